"""The root ``vxcache`` group; command modules attach themselves to it."""

from __future__ import annotations

import click

from vxcache import __version__
from vxcache.cli._app import common_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vxcache")
@common_options
def cli() -> None:
    """Mirror a deployment node's sessions into a local cache and query them with SQL."""


@cli.group()
def db() -> None:
    """Manage the cache schema."""


@cli.group()
def sessions() -> None:
    """Read sessions from the cache."""


@cli.group()
def artifacts() -> None:
    """Read pulled artifacts from the cache."""
