"""
The root ``vxcache`` group and its sub-groups.

Commands live in modules by topic and register themselves when imported. A
group imports a command's module only when that command is asked for, so
``vxcache query`` never loads SQLAlchemy, httpx or uvicorn, and answers in a
fraction of the time a full import takes.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from vxcache import __version__
from vxcache.cli._app import common_options

_PACKAGE = "vxcache.cli"


class LazyGroup(click.Group):
    """A group that imports the module defining a command on first use."""

    def __init__(self, *args: Any, modules: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules = dict(modules)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            importlib.import_module(f"{_PACKAGE}.{self.modules[cmd_name]}")
        return self.commands.get(cmd_name)


@click.group(
    cls=LazyGroup,
    modules={
        "init": "_cache", "sync": "_cache", "status": "_cache", "devnode": "_cache",
        "query": "_query", "report": "_query", "export": "_query",
        "apply": "_writes", "delete": "_writes",
        "serve": "_serve",
    },
    context_settings={"help_option_names": ["-h", "--help"]},
)  # fmt: skip
@click.version_option(__version__, prog_name="vxcache")
@common_options
def cli() -> None:
    """Mirror a deployment node's sessions into a local cache and query them with SQL."""


@cli.group(cls=LazyGroup, modules={"upgrade": "_cache", "current": "_cache"})
def db() -> None:
    """Manage the cache schema."""


@cli.group(
    cls=LazyGroup,
    modules={"list": "_sessions", "show": "_sessions", "history": "_sessions"},
)
def sessions() -> None:
    """Read sessions from the cache."""


@cli.group(
    cls=LazyGroup,
    modules={"list": "_sessions", "get": "_sessions", "export": "_sessions"},
)
def artifacts() -> None:
    """Read pulled artifacts from the cache."""


def load_all_commands() -> None:
    """Import every command module, so each group's ``commands`` is complete."""
    for group in (cli, db, sessions, artifacts):
        if isinstance(group, LazyGroup):
            for module in set(group.modules.values()):
                importlib.import_module(f"{_PACKAGE}.{module}")
