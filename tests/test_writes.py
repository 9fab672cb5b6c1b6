"""Apply and delete through the node: audit, staleness, the race with sync, the CLI."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Devnode, free_port, make_settings
from vxcache._time import utc_now
from vxcache.cli import _writes as cli_writes
from vxcache.cli import cli
from vxcache.cli._app import run_cli
from vxcache.client import NodeClient
from vxcache.config import Settings
from vxcache.errors import (
    SessionNotFoundError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamUnavailableError,
    WaitTimeoutError,
    WriteOutcomeUnknownError,
    WriteRefusedError,
)
from vxcache.models import Write
from vxcache.store import Store
from vxcache.sync import run_sync
from vxcache.writes import (
    GONE_STATUS,
    apply_session,
    delete_session,
    is_failed_status,
    is_settled_status,
    wait_until_settled,
)

ACTOR = "alice@example"


# -- helpers and fixtures ---------------------------------------------------------


@pytest.fixture
def settings(devnode: Devnode, db_path: Path) -> Settings:
    """Settings against the devnode with a fixed actor and a short wait."""
    return make_settings(
        devnode, db_path, writes={"actor": ACTOR, "wait_timeout": "20s"}
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store.open(settings) as opened:
        yield opened


@pytest.fixture
def client(settings: Settings) -> Iterator[NodeClient]:
    with NodeClient(settings.node) as opened:
        yield opened


def create_session(node: Devnode, **record: Any) -> str:
    """Add a session at the devnode (newest, so inside the list window)."""
    body = {
        "status": "planned",
        "hostname": "web-01.prod",
        "script": "install-nginx.sh",
    }
    body.update(record)
    return str(node.admin("POST", "sessions", json=body)["session_id"])


def sync(store: Store, client: NodeClient, settings: Settings, **kwargs: Any) -> Any:
    return run_sync(store, client, settings, pull=False, **kwargs)


def write_rows(store: Store) -> list[Write]:
    with store.reading() as connection:
        rows = connection.execute(select(Write).order_by(Write.write_id))
        return [Write.model_validate(row._mapping) for row in rows]


def set_faults(node: Devnode, **faults: Any) -> None:
    node.admin("PUT", "faults", json=faults)


def hold_transitions(node: Devnode) -> None:
    """Keep applied and deleted sessions in flight, so a test can see them there."""
    node.admin("PUT", "settings", json={"transition_seconds": 3600})


@pytest.fixture
def planned(
    devnode: Devnode, store: Store, client: NodeClient, settings: Settings
) -> str:
    """A planned session, mirrored into the cache by a real sync."""
    session_id = create_session(devnode)
    sync(store, client, settings)
    cached = store.session(session_id)
    assert cached is not None
    assert cached.status == "planned"
    return session_id


@pytest.fixture
def protected(
    devnode: Devnode, store: Store, client: NodeClient, settings: Settings
) -> str:
    """A succeeded session the node protects from a delete without force."""
    session_id = create_session(devnode, status="succeeded", protected=True)
    sync(store, client, settings)
    return session_id


# -- apply --------------------------------------------------------------------------


def test_apply_promotes_a_planned_session_and_the_refresh_clears_stale(
    devnode, store, client, settings, planned
):
    hold_transitions(devnode)
    started = utc_now()

    result = apply_session(store, client, settings, planned)

    cached = store.session(planned)
    history = store.history(planned)
    [row] = write_rows(store)
    assert (result.outcome, result.action, result.fresh) == ("ok", "apply", True)
    assert result.answer == {
        "session_id": planned,
        "status": "running",
        "message": "apply started",
    }
    assert result.detail == "apply started"
    assert (cached.status, cached.stale, cached.stale_since) == ("running", False, None)
    assert [(v.status, v.observed_via) for v in history] == [
        ("planned", "list"),
        ("running", "show"),
    ]
    assert (row.action, row.session_id, row.force, row.actor) == (
        "apply",
        planned,
        False,
        ACTOR,
    )
    assert (row.outcome, row.write_id) == ("ok", result.write_id)
    assert started <= row.at <= utc_now()
    assert row.duration_s is not None
    assert row.duration_s >= 0


def test_apply_of_a_session_not_planned_fails_with_the_nodes_words(
    store, client, settings, protected
):
    before = store.session(protected)

    with pytest.raises(
        UpstreamRejectedError, match="only planned sessions can be applied"
    ):
        apply_session(store, client, settings, protected)

    [row] = write_rows(store)
    assert (row.outcome, row.http_status) == ("failed", 409)
    assert row.detail == (
        f"Session {protected} is succeeded; only planned sessions can be applied"
    )
    assert store.session(protected) == before


def test_wait_follows_an_apply_to_success(devnode, store, client, settings, planned):
    devnode.admin("PUT", "settings", json={"next_apply_outcome": "succeeded"})
    apply_session(store, client, settings, planned)
    seen: list[str] = []

    final = wait_until_settled(store, client, settings, planned, on_status=seen.append)

    cached = store.session(planned)
    assert final == "succeeded"
    assert seen[-1] == "succeeded"
    assert set(seen) <= {"running", "succeeded"}
    assert (cached.status, cached.stale) == ("succeeded", False)
    assert cached.resource_id


def test_wait_follows_an_apply_to_failure(devnode, store, client, settings, planned):
    devnode.admin("PUT", "settings", json={"next_apply_outcome": "failed"})
    apply_session(store, client, settings, planned)

    final = wait_until_settled(store, client, settings, planned)

    assert final == "failed"
    assert is_failed_status(final)
    assert store.session(planned).status == "failed"


def test_wait_times_out_with_backoff_on_a_session_that_never_settles(
    devnode, store, client, db_path
):
    stuck = create_session(devnode, status="running")
    settings = make_settings(devnode, db_path, writes={"wait_timeout": "5s"})
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(WaitTimeoutError, match=r"still running after 5s.*--refresh"):
        wait_until_settled(
            store, client, settings, stuck, sleep=sleep, clock=lambda: now[0]
        )

    assert sleeps == pytest.approx([0.5, 0.75, 1.125, 1.6875, 0.9375])
    assert store.session(stuck).status == "running"


def test_wait_ends_as_gone_when_the_node_forgets_the_session(
    devnode, store, client, settings, planned
):
    devnode.admin("POST", f"sessions/{planned}/purge")

    final = wait_until_settled(store, client, settings, planned)

    assert final == GONE_STATUS
    assert store.session(planned).presence == "gone"


@pytest.mark.parametrize(
    ("status", "settled", "failed"),
    [
        ("planned", False, False),
        ("Running", False, False),
        ("in-progress", False, False),
        ("deleting", False, False),
        ("succeeded", True, False),
        ("deleted", True, False),
        ("failed", True, True),
        ("delete_failed", True, True),
        ("some_new_status", True, False),
    ],
    ids=lambda value: str(value),
)
def test_status_sets_say_what_is_settled_and_failed(status, settled, failed):
    assert (is_settled_status(status), is_failed_status(status)) == (settled, failed)


# -- delete -------------------------------------------------------------------------


def test_delete_without_force_of_a_protected_session_fails_and_leaves_the_cache(
    devnode, store, client, settings, protected
):
    before = store.session(protected)

    with pytest.raises(
        UpstreamRejectedError, match="is protected; confirm with force=true"
    ):
        delete_session(store, client, settings, protected)

    [row] = write_rows(store)
    assert (row.action, row.force, row.outcome, row.http_status) == (
        "delete",
        False,
        "failed",
        409,
    )
    assert row.detail == f"Session {protected} is protected; confirm with force=true"
    assert store.session(protected) == before
    assert devnode.requests()["delete"] == 1


def test_delete_with_force_tears_down_and_settles_deleted(
    store, client, settings, protected
):
    result = delete_session(store, client, settings, protected, force=True)
    final = wait_until_settled(store, client, settings, protected)

    [row] = write_rows(store)
    assert result.answer == {"session_id": protected, "status": "deleting"}
    assert result.fresh
    assert (row.force, row.outcome) == (True, "ok")
    assert final == "deleted"
    assert [v.status for v in store.history(protected)] == [
        "succeeded",
        "deleting",
        "deleted",
    ]


def test_a_second_delete_of_a_deleted_session_is_refused_by_the_node_with_a_warning(
    store, client, settings, planned, caplog
):
    delete_session(store, client, settings, planned)
    wait_until_settled(store, client, settings, planned)
    before = store.session(planned)

    with (
        caplog.at_level(logging.WARNING, logger="vxcache.writes"),
        pytest.raises(UpstreamRejectedError, match="is already deleted"),
    ):
        delete_session(store, client, settings, planned)

    assert [(r.outcome, r.http_status) for r in write_rows(store)] == [
        ("ok", None),
        ("failed", 409),
    ]
    assert "believes finished" in caplog.text
    assert store.session(planned) == before


def test_a_write_to_a_session_the_cache_thinks_gone_still_asks_the_node(
    devnode, store, client, settings, planned, caplog
):
    devnode.admin("POST", f"sessions/{planned}/purge")
    sync(store, client, settings)
    assert store.session(planned).presence == "gone"

    with (
        caplog.at_level(logging.WARNING, logger="vxcache.writes"),
        pytest.raises(SessionNotFoundError, match=f"Session {planned} not found"),
    ):
        apply_session(store, client, settings, planned)

    [row] = write_rows(store)
    assert (row.outcome, row.http_status) == ("failed", 404)
    assert devnode.requests()["apply"] == 1
    assert "believes finished" in caplog.text


# -- failures of the exchange ------------------------------------------------------


def test_a_lost_answer_is_unknown_sent_once_and_marks_the_session_stale(
    devnode, store, client, settings, planned
):
    hold_transitions(devnode)
    set_faults(devnode, drop_after_write_count=1)
    before = devnode.requests()

    with pytest.raises(
        WriteOutcomeUnknownError, match=rf"`vxcache sessions show {planned} --refresh`"
    ):
        apply_session(store, client, settings, planned)

    after = devnode.requests()
    [row] = write_rows(store)
    cached = store.session(planned)
    assert after["apply"] - before["apply"] == 1
    assert after["show"] == before["show"]
    assert row.outcome == "unknown"
    assert "--refresh" in row.detail
    assert (cached.stale, cached.status) == (True, "planned")
    assert cached.stale_since is not None
    assert cached.pull_wanted


def test_a_gateway_error_page_on_a_write_is_unknown_with_its_words(
    devnode, store, client, settings, planned
):
    set_faults(devnode, html_502_count=1, routes=["apply"])

    with pytest.raises(WriteOutcomeUnknownError, match="502 Bad Gateway"):
        apply_session(store, client, settings, planned)

    [row] = write_rows(store)
    assert (row.outcome, row.http_status) == ("unknown", 502)
    assert devnode.requests()["apply"] == 1
    assert store.session(planned).stale


def test_a_server_error_on_a_write_fails_once_with_the_nodes_words(
    devnode, store, client, settings, planned
):
    set_faults(devnode, error_rate=1.0, routes=["apply"])
    before = store.session(planned)

    with pytest.raises(UpstreamServerError, match="Internal Server Error"):
        apply_session(store, client, settings, planned)

    [row] = write_rows(store)
    assert (row.outcome, row.http_status, row.detail) == (
        "failed",
        500,
        "Internal Server Error",
    )
    assert devnode.requests()["apply"] == 1
    assert store.session(planned) == before


def test_offline_refuses_records_and_sends_nothing(
    devnode, store, client, settings, planned
):
    offline = settings.model_copy(update={"offline": True})
    before = devnode.requests()

    with pytest.raises(WriteRefusedError, match="offline") as raised:
        apply_session(store, client, offline, planned)
    with pytest.raises(WriteRefusedError):
        delete_session(store, None, settings, planned, force=True)

    rows = write_rows(store)
    assert raised.value.exit_code == 3
    assert [(r.action, r.force, r.outcome, r.actor) for r in rows] == [
        ("apply", False, "refused", ACTOR),
        ("delete", True, "refused", ACTOR),
    ]
    assert devnode.requests() == before
    assert not store.session(planned).stale


def test_a_stopped_node_refuses_with_exit_code_3(
    devnode, store, client, settings, planned
):
    devnode.stop()

    with pytest.raises(UpstreamUnavailableError, match="unreachable") as raised:
        apply_session(store, client, settings, planned)

    [row] = write_rows(store)
    assert raised.value.exit_code == 3
    assert (row.outcome, row.http_status) == ("refused", None)
    assert "unreachable" in row.detail
    assert not store.session(planned).stale


def test_a_closed_port_refuses_with_exit_code_3(store, db_path):
    settings = make_settings(None, db_path).model_copy(update={"offline": False})
    settings = settings.model_copy(
        update={
            "node": settings.node.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            )
        }
    )

    with (
        NodeClient(settings.node) as closed,
        pytest.raises(UpstreamUnavailableError, match="connection refused") as raised,
    ):
        delete_session(store, closed, settings, "ses_any", force=True)

    [row] = write_rows(store)
    assert raised.value.exit_code == 3
    assert (row.session_id, row.outcome) == ("ses_any", "refused")


def test_writes_rows_answer_who_what_when_and_outcome_for_every_attempt(
    devnode, store, client, settings, planned, protected
):
    offline = settings.model_copy(update={"offline": True})
    started = utc_now()

    with pytest.raises(WriteRefusedError):
        apply_session(store, client, offline, planned)
    apply_session(store, client, settings, planned)
    with pytest.raises(UpstreamRejectedError):
        delete_session(store, client, settings, protected)
    set_faults(devnode, drop_after_write_count=1)
    with pytest.raises(WriteOutcomeUnknownError):
        delete_session(store, client, settings, protected, force=True)

    rows = write_rows(store)
    assert [
        (r.action, r.session_id, r.force, r.outcome, r.http_status) for r in rows
    ] == [
        ("apply", planned, False, "refused", None),
        ("apply", planned, False, "ok", None),
        ("delete", protected, False, "failed", 409),
        ("delete", protected, True, "unknown", None),
    ]
    assert {r.actor for r in rows} == {ACTOR}
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    assert all(started <= r.at <= utc_now() for r in rows)
    assert all(r.duration_s is not None for r in rows)
    assert store.counts()["writes"] == 4


# -- the race with sync ------------------------------------------------------------


def test_a_sync_listed_before_a_write_does_not_undo_the_refreshed_session(
    devnode, store, client, settings, planned
):
    hold_transitions(devnode)
    results = []

    summary = sync(
        store,
        client,
        settings,
        after_list=lambda: results.append(
            apply_session(store, client, settings, planned)
        ),
    )

    cached = store.session(planned)
    assert summary.outcome == "ok"
    assert results[0].fresh
    assert (cached.status, cached.stale) == ("running", False)
    assert [v.status for v in store.history(planned)] == ["planned", "running"]


def test_a_sync_listed_before_a_write_keeps_the_session_stale_until_a_later_list(
    devnode, store, client, settings, planned
):
    set_faults(devnode, unavailable_count=-1, routes=["show"])
    results = []

    sync(
        store,
        client,
        settings,
        after_list=lambda: results.append(
            apply_session(store, client, settings, planned)
        ),
    )
    during = store.session(planned)
    set_faults(devnode)
    sync(store, client, settings)
    after = store.session(planned)

    assert not results[0].fresh
    assert (during.status, during.stale) == ("planned", True)
    assert during.stale_since is not None
    assert after.status in ("running", "succeeded", "failed")
    assert not after.stale


def test_a_sync_listed_after_a_write_clears_stale(
    devnode, store, client, settings, planned
):
    set_faults(devnode, drop_after_write_count=1)
    with pytest.raises(WriteOutcomeUnknownError):
        apply_session(store, client, settings, planned)

    sync(store, client, settings)

    cached = store.session(planned)
    assert cached.status in ("running", "succeeded", "failed")
    assert not cached.stale


# -- the command line --------------------------------------------------------------


@pytest.fixture
def vx(devnode, db_path, capsys, monkeypatch):
    """Run vxcache against the devnode; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("VXCACHE_NODE_URL", devnode.url)
    monkeypatch.setenv("VXCACHE_TOKEN", devnode.token)
    monkeypatch.setenv("VXCACHE_DB", str(db_path))
    monkeypatch.setattr(cli_writes, "stdin_is_interactive", lambda: False)

    def run(*args: str) -> tuple[int, str, str]:
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def terminal(monkeypatch):
    """Pretend stdin is a terminal; returns a function that sets what is typed."""
    monkeypatch.setattr(cli_writes, "stdin_is_interactive", lambda: True)

    def type_in(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return type_in


def test_cli_delete_without_a_terminal_or_yes_refuses_with_one_line(
    vx, devnode, store, protected
):
    code, out, err = vx("delete", protected, "--force")

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("Error: ")
    assert "--yes" in err
    assert devnode.requests()["delete"] == 0
    assert write_rows(store) == []


def test_cli_apply_without_a_terminal_or_yes_refuses(vx, devnode, planned):
    code, _out, err = vx("apply", planned)

    assert code == 2
    assert "--yes" in err
    assert devnode.requests()["apply"] == 0


def test_cli_delete_confirmation_names_host_script_status_and_force(
    vx, terminal, devnode, protected
):
    terminal("n\n")

    code, out, err = vx("delete", protected)

    assert code == 1
    assert out == ""
    assert "web-01.prod" in err
    assert "install-nginx.sh" in err
    assert "cached status succeeded" in err
    assert "without force" in err
    assert "not confirmed; nothing was sent" in err
    assert devnode.requests()["delete"] == 0


def test_cli_delete_confirmed_on_a_terminal_is_sent(vx, terminal, devnode, protected):
    terminal("y\n")

    code, out, err = vx("delete", protected, "--force", "--format", "json")

    assert code == 0
    assert "with force" in err
    assert json.loads(out) == {"session_id": protected, "status": "deleting"}
    assert devnode.requests()["delete"] == 1


def test_cli_apply_yes_prints_the_nodes_answer_and_notes_on_stderr(
    vx, devnode, planned, store
):
    hold_transitions(devnode)

    code, out, err = vx("apply", planned, "--yes", "--format", "json")

    assert code == 0
    assert json.loads(out)["status"] == "running"
    assert "accepted by the node" in err
    assert store.session(planned).status == "running"


def test_cli_apply_wait_exits_0_when_it_succeeds(vx, devnode, planned):
    devnode.admin("PUT", "settings", json={"next_apply_outcome": "succeeded"})

    code, _out, err = vx("apply", planned, "--yes", "--wait")

    assert code == 0
    assert f"{planned} settled: succeeded" in err


def test_cli_apply_wait_exits_1_when_it_settles_failed(vx, devnode, planned):
    devnode.admin("PUT", "settings", json={"next_apply_outcome": "failed"})

    code, _out, err = vx("apply", planned, "--yes", "--wait")

    assert code == 1
    assert err.splitlines()[-1] == (
        f"Error: apply of {planned} settled as failed; "
        f"see `vxcache sessions show {planned}`"
    )


def test_cli_delete_refused_by_the_node_exits_1_with_its_words(vx, store, protected):
    code, out, err = vx("delete", protected, "--yes")

    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "is protected; confirm with force=true" in err
    assert store.session(protected).status == "succeeded"


def test_cli_lost_answer_exits_1_and_says_how_to_check(vx, devnode, planned):
    set_faults(devnode, drop_after_write_count=1)

    code, _out, err = vx("apply", planned, "--yes")

    assert code == 1
    assert f"`vxcache sessions show {planned} --refresh`" in err


def test_cli_offline_exits_3_without_asking_or_sending(
    vx, terminal, devnode, store, planned
):
    terminal("")

    code, out, err = vx("delete", planned, "--force", "--offline")

    assert code == 3
    assert out == ""
    assert "offline" in err
    assert devnode.requests()["delete"] == 0
    assert [r.outcome for r in write_rows(store)] == ["refused"]


def test_cli_unreachable_node_exits_3(vx, store, planned, monkeypatch):
    monkeypatch.setenv("VXCACHE_NODE_URL", f"http://127.0.0.1:{free_port()}")

    code, _out, err = vx("apply", planned, "--yes")

    assert code == 3
    assert "unreachable" in err
    assert [r.outcome for r in write_rows(store)] == ["refused"]


def test_cli_warns_before_writing_a_session_the_cache_thinks_deleted(
    vx, store, client, settings, planned
):
    delete_session(store, client, settings, planned)
    wait_until_settled(store, client, settings, planned)
    assert store.session(planned).status == "deleted"

    code, _out, err = vx("delete", planned, "--yes")

    assert code == 1
    assert "warning: the cache believes session" in err
    assert "already deleted" in err
