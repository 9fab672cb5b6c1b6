"""Read commands: sessions and artifacts, from the cache, with their staleness."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vxcache._time import parse_timestamp
from vxcache.cli._app import App, command_with_options, pass_app
from vxcache.cli._group import artifacts, sessions
from vxcache.cli._output import print_record, print_rows
from vxcache.client import NodeClient
from vxcache.errors import (
    RecordNotFoundError,
    SessionNotFoundError,
    UpstreamError,
    UpstreamRejectedError,
)
from vxcache.exporting import export_artifacts
from vxcache.models import SESSION_BOOKKEEPING, Session
from vxcache.store._reads import SessionFilter
from vxcache.sync import refresh_session

LIST_COLUMNS = (
    "session_id",
    "status",
    "hostname",
    "username",
    "script",
    "started_at",
    "ended_at",
    "presence",
    "stale",
)


def _timestamp(
    _context: click.Context, _param: click.Parameter, value: str | None
) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def session_record(session: Session) -> dict[str, Any]:
    """Return a session as the read commands print it."""
    return session.model_dump(exclude=set(SESSION_BOOKKEEPING))


@command_with_options(sessions, name="list")
@click.option("--status", help="Only this status.")
@click.option("--host", "hostname", help="Only this hostname.")
@click.option("--user", "username", help="Only this username.")
@click.option("--script", help="Only this script.")
@click.option("--since", callback=_timestamp, help="Started at or after (ISO-8601).")
@click.option("--until", callback=_timestamp, help="Started before (ISO-8601).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@pass_app
def sessions_list(
    app: App,
    status: str | None,
    hostname: str | None,
    username: str | None,
    script: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> None:
    """
    List cached sessions, newest first; works offline.

    Example: vxcache sessions list --status failed --since 2026-11-01
    """
    where = SessionFilter(
        status=status,
        hostname=hostname,
        username=username,
        script=script,
        since=since,
        until=until,
        limit=limit,
    )
    with app.open_store() as store:
        found = store.list_sessions(where)
        rows = [
            [getattr(session, column) for column in LIST_COLUMNS] for session in found
        ]
        print_rows(LIST_COLUMNS, rows, fmt=app.fmt)
        app.note_freshness(store)


@command_with_options(sessions, name="show")
@click.argument("session_id")
@click.option("--refresh", is_flag=True, help="Read it fresh from the node first.")
@pass_app
def sessions_show(app: App, session_id: str, refresh: bool) -> None:
    """
    Show one session; --refresh reads through to the node when it answers.

    Example: vxcache sessions show ses_0a1b2c3d4e5f --refresh
    """
    problem = None
    with app.open_store() as store:
        if refresh and not app.settings.offline:
            try:
                with NodeClient(app.settings.node) as client:
                    refresh_session(store, client, session_id)
            except SessionNotFoundError:
                app.note(f"the node no longer knows {session_id}; marked gone")
            except UpstreamRejectedError:
                # A refused token or request is for the user to fix, not a
                # reason to quietly fall back to the cache.
                raise
            except UpstreamError as exc:
                problem = str(exc)
        session = store.session(session_id)
        if session is None:
            raise RecordNotFoundError(
                f"session {session_id} is not in the cache; "
                "check the id or run `vxcache sync`"
            )
        print_record(session_record(session), fmt=app.fmt)
        app.note_freshness(store, refresh_failed=problem)


@command_with_options(sessions, name="history")
@click.argument("session_id")
@pass_app
def sessions_history(app: App, session_id: str) -> None:
    """
    Show every observed version of a session.

    Example: vxcache sessions history ses_0a1b2c3d4e5f
    """
    with app.open_store() as store:
        versions = store.history(session_id)
        if not versions:
            raise RecordNotFoundError(f"session {session_id} is not in the cache")
        columns = (
            "version",
            "status",
            "ended_at",
            "valid_from",
            "valid_to",
            "sync_id",
            "observed_via",
        )
        print_rows(
            columns, [[getattr(v, c) for c in columns] for v in versions], fmt=app.fmt
        )
        app.note_freshness(store)


@command_with_options(artifacts, name="list")
@click.argument("session_id")
@pass_app
def artifacts_list(app: App, session_id: str) -> None:
    """
    List the artifacts of a session's latest pull.

    Example: vxcache artifacts list ses_0a1b2c3d4e5f
    """
    with app.open_store() as store:
        found = store.artifacts(session_id)
        columns = ("name", "kind", "content_type", "size_bytes", "sha256", "pulled_at")
        print_rows(
            columns, [[getattr(a, c) for c in columns] for a in found], fmt=app.fmt
        )
        app.note_freshness(store)


@command_with_options(artifacts, name="get")
@click.argument("session_id")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of stdout.",
)
@pass_app
def artifacts_get(app: App, session_id: str, name: str, output: Path | None) -> None:
    """
    Print one artifact's content (or write it with -o).

    Example: vxcache artifacts get ses_0a1b2c3d4e5f plan.txt -o plan.txt
    """
    with app.open_store() as store:
        found = {artifact.name: artifact for artifact in store.artifacts(session_id)}
        if name not in found:
            raise RecordNotFoundError(
                f"no artifact {name!r} in the latest pull of {session_id}; "
                f"see `vxcache artifacts list {session_id}`"
            )
        content = store.blob(found[name].sha256) or b""
        if output is not None:
            output.write_bytes(content)
        else:
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
        app.note_freshness(store)


@command_with_options(artifacts, name="export")
@click.argument("session_id")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@pass_app
def artifacts_export(app: App, session_id: str, directory: Path, force: bool) -> None:
    """
    Write every artifact of a session's latest pull into DIRECTORY, and only there.

    Example: vxcache artifacts export ses_0a1b2c3d4e5f ./out
    """
    with app.open_store() as store:
        report = export_artifacts(store, session_id, directory, overwrite=force)
        for name, reason in report.refused:
            app.note(f"refused {name!r}: {reason}")
        app.note(f"wrote {len(report.written)} artifacts to {directory}")
        app.note_freshness(store)
    if report.refused:
        raise click.exceptions.Exit(1)
