"""The command-line frame: shared options, settings, notes on stderr and exit codes."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from vxcache.cli._output import FORMATS
from vxcache.config import Settings, load_settings
from vxcache.errors import UpstreamUnavailableError, VxcacheError
from vxcache.log import configure_logging

if TYPE_CHECKING:
    from vxcache.store import Store

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command reads: options shared by all commands, and the settings."""

    config_path: Path | None = None
    db_path: Path | None = None
    node_url: str | None = None
    offline: bool = False
    fmt: str = "table"
    quiet: bool = False
    verbosity: int = 0
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Return the settings, built once from file, environment and options."""
        if self._settings is None:
            overrides: dict[str, dict[str, Any]] = {}
            if self.node_url:
                overrides["node"] = {"url": self.node_url}
            if self.db_path:
                overrides["cache"] = {"path": str(self.db_path)}
            self._settings = load_settings(
                self.config_path, overrides=overrides, offline=self.offline
            )
        return self._settings

    def open_store(self, *, create: bool = False, migrate: bool = True) -> Store:
        """Open (and migrate) the cache; only commands that fill it may create it."""
        from vxcache.store import Store  # SQLAlchemy: only for commands that need it

        return Store.open(self.settings, create=create, migrate=migrate)

    def note(self, message: str) -> None:
        """Print a note for people on stderr, unless ``-q``."""
        if not self.quiet:
            click.echo(message, err=True)

    def note_freshness(
        self, store: Store, *, refresh_failed: str | None = None
    ) -> None:
        """Print the one staleness line every read ends with."""
        self.note(store.freshness().describe(refresh_failed=refresh_failed))


pass_app = click.make_pass_decorator(App, ensure=True)


def _setter(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store_option(
        context: click.Context, _param: click.Parameter, value: Any
    ) -> None:
        if value is None or value is False or value == 0 or value == ():
            return
        setattr(context.ensure_object(App), attribute, value)

    return store_option


def common_options(command: F) -> F:
    """Add the options every command takes; they work before or after the command name."""
    options = [
        click.option(
            "--config",
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_setter("config_path"),
            help="Config file (default: VXCACHE_CONFIG or the user config folder).",
        ),
        click.option(
            "--db",
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_setter("db_path"),
            help="Cache file (overrides cache.path and VXCACHE_DB).",
        ),
        click.option(
            "--node",
            type=str,
            expose_value=False,
            callback=_setter("node_url"),
            help="Node URL (overrides node.url and VXCACHE_NODE_URL).",
        ),
        click.option(
            "--offline",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_setter("offline"),
            help="Never touch the network.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            expose_value=False,
            callback=_setter("fmt"),
            help="Output format for data on stdout (default: table).",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_setter("quiet"),
            help="No notes on stderr.",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            expose_value=False,
            callback=_setter("verbosity"),
            help="More logging on stderr (-v info, -vv debug, tracebacks).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the command stops as it would on Ctrl-C."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def run_cli(group: click.Group, args: list[str] | None = None) -> int:
    """Run the command line; turn every failure into one line on stderr and an exit code."""
    app = App()
    with _sigterm_as_interrupt():
        return _run(app, group, args)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """
    Let SIGTERM stop a command the way Ctrl-C does, in the main thread.

    By default SIGTERM ends the process at once, leaving a sync for the next
    one to close. The scheduling commands put their own handler in place.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(app: App, group: click.Group, args: list[str] | None) -> int:
    try:
        with group.make_context(
            "vxcache", list(sys.argv[1:] if args is None else args), obj=app
        ) as context:
            quiet_level = logging.ERROR if app.quiet else logging.WARNING
            configure_logging(app.verbosity, default_level=quiet_level, is_brief=True)
            group.invoke(context)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        return (
            2
            if isinstance(exc, click.UsageError | click.BadParameter)
            else exc.exit_code
        )
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except VxcacheError as exc:
        _fail(app, str(exc))
        return exc.exit_code
    except Terminated:
        click.echo("Terminated.", err=True)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:
        _fail(app, f"unexpected {type(exc).__name__}: {exc} (run with -v for details)")
        return 1
    return 0


def _fail(app: App, message: str) -> None:
    if app.verbosity > 0:
        traceback.print_exc(file=sys.stderr)
    click.echo(f"Error: {message}", err=True)


def needs_node(app: App, action: str) -> None:
    """Refuse a command that must reach the node when ``--offline`` is set."""
    if app.settings.offline:
        raise UpstreamUnavailableError(f"{action} needs the node, and --offline is set")


def command_with_options(
    group: click.Group, name: str | None = None, **kwargs: Any
) -> Callable[[F], F]:
    """Register a command on ``group`` with the common options."""

    def register(function: F) -> F:
        wrapped = common_options(function)
        group.command(name, **kwargs)(wrapped)
        return cast(F, functools.wraps(function)(wrapped))

    return register
