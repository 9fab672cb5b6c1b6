"""Write commands: apply and delete a session through the node, with confirmation."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click
from rich.console import Console

from vxcache.cli._app import App, command_with_options, pass_app
from vxcache.cli._group import cli
from vxcache.cli._output import print_record
from vxcache.client import NodeClient
from vxcache.errors import WriteRefusedError
from vxcache.models import Session
from vxcache.store import Store
from vxcache.writes import (
    GONE_STATUS,
    WriteResult,
    apply_session,
    cache_warning,
    delete_session,
    is_failed_status,
    wait_until_settled,
)

_WAIT_HELP = "Follow the session until it settles; exit 1 if it settles failed."


def stdin_is_interactive() -> bool:
    """Return whether a person can answer a confirmation prompt."""
    return sys.stdin.isatty()


@command_with_options(cli)
@click.argument("session_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@pass_app
def apply(app: App, session_id: str, yes: bool, wait: bool) -> None:
    """
    Apply a session's saved plan on the node (changes real infrastructure).

    Asks for confirmation on a terminal; scripts pass --yes.

    Example: vxcache apply ses_0a1b2c3d4e5f --yes --wait
    """
    _run_write(app, "apply", session_id, force=False, yes=yes, wait=wait)


@command_with_options(cli)
@click.argument("session_id")
@click.option(
    "--force",
    is_flag=True,
    help="Pass the node's own confirmation (protected sessions).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@pass_app
def delete(app: App, session_id: str, force: bool, yes: bool, wait: bool) -> None:
    """
    Tear down the resource a session provisioned, on the node.

    Asks for confirmation on a terminal; scripts pass --yes.

    Example: vxcache delete ses_0a1b2c3d4e5f --force --yes
    """
    _run_write(app, "delete", session_id, force=force, yes=yes, wait=wait)


def _run_write(
    app: App, action: str, session_id: str, *, force: bool, yes: bool, wait: bool
) -> None:
    settings = app.settings
    with app.open_store(create=True) as store:
        cached = store.session(session_id)
        warning = cache_warning(cached, session_id=session_id)
        if warning is not None:
            app.note(f"warning: {warning}")
        if settings.offline:
            # The library records the refusal and raises; no prompt is worth it.
            _send(app, store, None, action, session_id, force=force)
        if not yes:
            _confirm(action, session_id, cached, force=force)

        with NodeClient(settings.node) as client:
            result = _send(app, store, client, action, session_id, force=force)
            _report(app, result, shown_warning=warning)
            if wait:
                _follow(app, store, client, result)


def _send(
    app: App,
    store: Store,
    client: NodeClient | None,
    action: str,
    session_id: str,
    *,
    force: bool,
) -> WriteResult:
    if action == "apply":
        return apply_session(store, client, app.settings, session_id)
    return delete_session(store, client, app.settings, session_id, force=force)


def _confirm(
    action: str, session_id: str, cached: Session | None, *, force: bool
) -> None:
    if not stdin_is_interactive():
        raise WriteRefusedError(
            f"{action} of session {session_id} needs confirmation and stdin is not a "
            "terminal; nothing was sent; pass --yes to confirm"
        )
    prompt = f"{action.capitalize()} session {session_id} ({_describe(cached)})"
    if action == "delete":
        prompt += ", with force" if force else ", without force"
    prompt += " on the node? This changes real infrastructure"
    if not click.confirm(prompt, default=False, err=True):
        raise WriteRefusedError(
            f"{action} of session {session_id} not confirmed; nothing was sent",
            exit_code=1,
        )


def _describe(cached: Session | None) -> str:
    if cached is None:
        return "not in the cache"
    host = cached.hostname or "no host"
    script = cached.script or "no script"
    stale = ", stale" if cached.stale else ""
    return f"host {host}, script {script}, cached status {cached.status}{stale}"


def _report(app: App, result: WriteResult, *, shown_warning: str | None) -> None:
    if result.answer:
        print_record(result.answer, fmt=app.fmt)
    elif app.fmt != "table":
        print_record({}, fmt=app.fmt)
    app.note(
        f"{result.action} of {result.session_id} accepted by the node "
        f"(write {result.write_id})"
    )
    for warning in result.warnings:
        if warning != shown_warning:
            app.note(f"warning: {warning}")
    if not result.fresh:
        app.note(
            f"the cache could not read {result.session_id} back; it stays stale until "
            f"the next sync or `vxcache sessions show {result.session_id} --refresh`"
        )


def _follow(app: App, store: Store, client: NodeClient, result: WriteResult) -> None:
    session_id = result.session_id
    with _status_line(app, f"{result.action} {session_id}") as show:
        final = wait_until_settled(
            store, client, app.settings, session_id, on_status=show
        )
    if final == GONE_STATUS:
        app.note(f"the node no longer knows {session_id}; marked gone")
        return
    if is_failed_status(final):
        click.echo(
            f"Error: {result.action} of {session_id} settled as {final}; "
            f"see `vxcache sessions show {session_id}`",
            err=True,
        )
        raise click.exceptions.Exit(1)
    app.note(f"{session_id} settled: {final}")


@contextlib.contextmanager
def _status_line(app: App, label: str) -> Iterator[Callable[[str], None]]:
    """Yield a status callback: a live line on a terminal, else a note per change."""
    if app.quiet:
        yield lambda _status: None
        return
    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(f"{label}: waiting") as live:
            yield lambda status: live.update(f"{label}: {status}")
        return

    seen: list[str] = []

    def note_change(status: str) -> None:
        if not seen or seen[-1] != status:
            seen.append(status)
            app.note(f"{label}: {status}")

    yield note_change
