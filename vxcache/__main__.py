"""``python -m vxcache`` runs the command line."""

from vxcache.cli import main

main()
