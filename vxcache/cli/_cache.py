"""Commands that set up, fill and describe the cache: init, sync, status, db, devnode."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from vxcache._time import utc_now
from vxcache._units import format_duration, parse_duration
from vxcache.cli._app import App, command_with_options, needs_node, pass_app
from vxcache.cli._group import cli, db
from vxcache.cli._output import print_record
from vxcache.client import NodeClient
from vxcache.config import default_config_path, starter_config
from vxcache.errors import CacheBusyError, SyncError, UsageError, VxcacheError
from vxcache.query import refresh_replica
from vxcache.schedule import build_scheduler, claim_schedule, stop_on_signals
from vxcache.sync import SyncSummary, run_sync


@command_with_options(cli)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@pass_app
def init(app: App, force: bool) -> None:
    """
    Write a starter config (mode 0600) and create the cache.

    Example: vxcache init --node http://127.0.0.1:8700
    """
    from_environment = os.environ.get("VXCACHE_CONFIG")
    path = app.config_path or (Path(from_environment) if from_environment else None)
    path = path or default_config_path()
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = starter_config(node_url=app.node_url, db_path=app.db_path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    app.config_path = path
    with app.open_store(create=True) as store:
        app.note(f"wrote {path}\ncache at {store.db_path} (schema {store.revision()})")
        if not app.settings.node.token.get_secret_value():
            app.note("set the node token in VXCACHE_TOKEN (or node.token)")
        app.note("next: `vxcache sync`")


def _parse_every(
    _context: click.Context, _param: click.Parameter, value: str | None
) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds < 1:
        raise click.BadParameter("the interval must be at least 1s")
    return seconds


@command_with_options(cli)
@click.option(
    "--no-pull", is_flag=True, help="Mirror the list only; pull no artifacts."
)
@click.option(
    "--every",
    callback=_parse_every,
    metavar="DURATION",
    help="Keep syncing at this interval (e.g. 5m) until interrupted.",
)
@pass_app
def sync(app: App, no_pull: bool, every: float | None) -> None:
    """
    Mirror the node's sessions and artifacts into the cache.

    Example: vxcache sync --every 5m
    """
    needs_node(app, "sync")
    settings = app.settings
    if every is not None:
        claim = claim_schedule(settings)  # held until the process ends
        if claim is None:
            raise CacheBusyError(
                f"another vxcache process already syncs {settings.cache.db_path} on a "
                "schedule (sync --every or serve); stop it first, or run one `vxcache sync`"
            )
        scheduler = build_scheduler(
            settings,
            blocking=True,
            interval_seconds=every,
            after_sync=lambda summary: _after_sync(app, summary),
        )
        stop_on_signals(scheduler)
        app.note(f"syncing every {format_duration(every)}; Ctrl-C stops")
        scheduler.start()
        return
    with (
        app.open_store(create=True) as store,
        NodeClient(settings.node) as client,
        _progress(app) as hook,
    ):
        summary = run_sync(
            store, client, settings, pull=False if no_pull else None, progress=hook
        )
    _after_sync(app, summary)
    if summary.outcome == "partial":
        # What was mirrored stays; scripts still learn that something is missing.
        raise SyncError(
            f"sync {summary.sync_id} is partial: {summary.shortfall()}; "
            "the next sync tries again",
            run_id=summary.sync_id,
        )


def _after_sync(app: App, summary: SyncSummary) -> None:
    # The sync's warnings reached stderr through logging as they arose.
    # Bring the query replica up to date now, so the first query after a sync
    # does not pay for it; a failure here costs speed, never data.
    try:
        refresh_replica(app.settings.cache.db_path)
    except VxcacheError as exc:
        app.note(f"warning: the query replica was not refreshed: {exc}")
    app.note(summary.describe())


class _progress:
    """A progress bar for shows and pulls on a terminal; nothing otherwise."""

    def __init__(self, app: App) -> None:
        self.enabled = sys.stderr.isatty() and not app.quiet
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _progress | None:
        if not self.enabled:
            return None
        self.bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done)


@command_with_options(cli)
@pass_app
def status(app: App) -> None:
    """
    Show the last sync, its age, cache counts and whether the node answers.

    Example: vxcache status --format json
    """
    with app.open_store() as store:
        freshness = store.freshness()
        counts = store.counts()
    reachable: str | bool = "not checked (--offline)"
    problem = None
    if not app.settings.offline:
        with NodeClient(app.settings.node) as client:
            problem = client.check_reachable()
        reachable = problem is None or problem
    age = None
    if freshness.last_success_at is not None:
        age = format_duration((utc_now() - freshness.last_success_at).total_seconds())
    record = {
        "cache": str(app.settings.cache.db_path),
        "node": app.settings.node.url,
        "node_reachable": reachable,
        "last_sync_at": freshness.last_success_at,
        "last_sync_age": age,
        "last_attempt_outcome": freshness.last_attempt_outcome,
        "last_error": freshness.last_error,
        **counts,
    }
    print_record(record, fmt=app.fmt)
    app.note(
        freshness.describe(
            refresh_failed=problem.removeprefix("unreachable: ") if problem else None
        )
    )


@command_with_options(db, name="upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """
    Apply pending schema migrations to the cache.

    Example: vxcache db upgrade
    """
    with app.open_store(create=True) as store:
        app.note(f"cache {store.db_path} is at schema {store.upgrade()}")


@command_with_options(db, name="current")
@pass_app
def db_current(app: App) -> None:
    """
    Print the cache's schema revision.

    Example: vxcache db current
    """
    with app.open_store(migrate=False) as store:
        click.echo(store.revision() or "none")


@command_with_options(cli)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8700, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--sessions",
    "session_count",
    default=2000,
    show_default=True,
    type=int,
    help="Sessions to seed.",
)
@click.option(
    "--window",
    default=200,
    show_default=True,
    type=int,
    help="How many recent sessions the list shows.",
)
@click.option(
    "--seed", default=1, show_default=True, type=int, help="Seed for repeatable data."
)
@click.option(
    "--token", default=None, help="Bearer token to require (default: printed)."
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=float,
    help="New sessions per minute.",
)
def devnode(
    host: str,
    port: int,
    session_count: int,
    window: int,
    seed: int,
    token: str | None,
    rate: float,
) -> None:
    """
    Serve a seeded stand-in for the node, for demos and tests.

    Example: vxcache devnode --port 8700 --sessions 2000 --seed 1
    """
    from vxcache.devnode import DevnodeConfig, serve

    config = DevnodeConfig(
        sessions=session_count, window=window, seed=seed, rate_per_minute=rate
    )
    if token:
        config.token = token
    serve(config, host=host, port=port, show_token=not token)
