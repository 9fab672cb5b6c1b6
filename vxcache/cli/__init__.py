"""
The ``vxcache`` command line: thin commands over the library.

Example:
    $ vxcache sync && vxcache query "SELECT status, count(*) FROM sessions GROUP BY 1"
"""

from __future__ import annotations

import sys

from vxcache.cli._app import run_cli
from vxcache.cli._group import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Run ``vxcache`` with the process arguments and exit with its code."""
    sys.exit(run_cli(cli))
