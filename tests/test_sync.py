"""Sync against the devnode over real HTTP into a real SQLite file."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from conftest import Devnode, DevnodeFactory, make_settings

from vxcache._time import format_timestamp, parse_timestamp
from vxcache._units import format_duration
from vxcache.client import NodeClient, PullResult
from vxcache.config import Settings
from vxcache.errors import (
    CacheBusyError,
    SessionNotFoundError,
    SyncStoppedError,
    UpstreamDataError,
    UpstreamError,
)
from vxcache.pulls import pull_input
from vxcache.records import SessionListing
from vxcache.store import Store
from vxcache.store._engine import create_sqlite_engine, migrations_folder
from vxcache.store._reads import SessionFilter
from vxcache.sync import SyncSummary, refresh_session, run_sync, sync_lock
from vxcache.terraform import REDACTED

SESSIONS_SQL = "SELECT * FROM sessions ORDER BY session_id"
HISTORY_SQL = "SELECT * FROM session_history ORDER BY session_id, version"


# -- helpers ---------------------------------------------------------------------

# One client for the test's own requests to the devnode: building one per call
# costs more than the call.
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def admin(node: Devnode, method: str, path: str, **kwargs: Any) -> Any:
    """Call an admin route of the devnode and return its JSON answer."""
    response = HTTP.request(method, f"{node.url}/_admin/{path}", **kwargs)
    response.raise_for_status()
    return response.json()


def node_post(node: Devnode, route: str, session_id: str) -> dict[str, Any]:
    """POST a session id to a node route as the node's own clients do."""
    response = HTTP.post(
        f"{node.url}/api/v2/tenant/sessions/{route}",
        json={"session_id": session_id},
        headers={"Authorization": f"Bearer {node.token}"},
    )
    response.raise_for_status()
    return dict(response.json())


def settings_for(
    node: Devnode, db_path: Path, *, max_attempts: int | None = None, **sections: Any
) -> Settings:
    """Settings against ``node``; ``max_attempts`` overrides the node section."""
    settings = make_settings(node, db_path, **sections)
    if max_attempts is None:
        return settings
    node_settings = settings.node.model_copy(update={"max_attempts": max_attempts})
    return settings.model_copy(update={"node": node_settings})


def shrink_window(node: Devnode, window: int) -> None:
    admin(node, "PUT", "settings", json={"window": window})


def downgrade(db_path: Path, revision: str) -> None:
    """Take a cache back to an older schema revision, as an older vxcache left it."""
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    engine = create_sqlite_engine(db_path, busy_timeout_seconds=5)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    engine.dispose()


def sync(settings: Settings, **options: Any) -> SyncSummary:
    with Store.open(settings) as store, NodeClient(settings.node) as client:
        return run_sync(store, client, settings, **options)


def query(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the cache through a raw read-only connection."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as connection:
        return connection.execute(sql, params).fetchall()


def scalar(db_path: Path, sql: str, *params: Any) -> Any:
    return query(db_path, sql, *params)[0][0]


def listed_ids(node: Devnode) -> list[str]:
    """Return the ids the node lists now, newest first."""
    response = HTTP.get(
        f"{node.url}/api/v3/sessions/list",
        headers={"Authorization": f"Bearer {node.token}"},
    )
    response.raise_for_status()
    return [str(item["session_id"]) for item in response.json()]


def set_faults(node: Devnode, **faults: Any) -> None:
    admin(node, "PUT", "faults", json=faults)


def patch(node: Devnode, session_id: str, **changes: Any) -> None:
    admin(node, "PATCH", f"sessions/{session_id}", json=changes)


def poll(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.02)


def sensitive_output_values(node: Devnode, session_ids: list[str]) -> set[str]:
    """Return the values of the outputs the node marks sensitive, as it sends them."""
    values: set[str] = set()
    for session_id in session_ids:
        outputs = node_post(node, "pull", session_id)["terraform_state"]["outputs"]
        values.update(str(o["value"]) for o in outputs.values() if o.get("sensitive"))
    return values


def blob_contents(db_path: Path) -> list[bytes]:
    """Return every blob decompressed, and gzip members inside them unpacked too."""
    contents = []
    for data, compression in query(
        db_path, "SELECT data, compression FROM _vxcache_blobs"
    ):
        content = zlib.decompress(data) if compression == "zlib" else bytes(data)
        contents.append(content)
        if content[:2] == b"\x1f\x8b":
            contents.append(gzip.decompress(content))
    return contents


def session_rows(db_path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return query(db_path, SESSIONS_SQL), query(db_path, HISTORY_SQL)


def last_run(db_path: Path) -> tuple[Any, ...]:
    return query(
        db_path, "SELECT outcome, error FROM sync_runs ORDER BY sync_id DESC LIMIT 1"
    )[0]


@pytest.fixture
def node(devnode_factory: DevnodeFactory) -> Devnode:
    """A small devnode: 40 sessions, 10 of them listed."""
    return devnode_factory(sessions=40, window=10)


@pytest.fixture
def list_only(node: Devnode, db_path: Path) -> Settings:
    """Settings that mirror the list and pull nothing; one attempt per request."""
    return settings_for(node, db_path, max_attempts=1, sync={"pull": False})


@pytest.fixture
def pulling(node: Devnode, db_path: Path) -> Settings:
    """Settings that pull new and changed sessions; one attempt per request."""
    return settings_for(node, db_path, max_attempts=1)


# -- the version chain -----------------------------------------------------------


def changed_three_times(node: Devnode, settings: Settings) -> str:
    sync(settings)
    session_id = listed_ids(node)[0]
    for step in range(1, 4):
        patch(node, session_id, status=f"scripted-{step}")
        sync(settings)
    return session_id


def test_versions_chain_each_valid_to_to_the_next_valid_from(
    node: Devnode, list_only: Settings
) -> None:
    session_id = changed_three_times(node, list_only)

    with Store.open(list_only) as store:
        versions = store.history(session_id)

    chain = [(v.version, v.valid_to) for v in versions]
    expected = [
        (1, versions[1].valid_from),
        (2, versions[2].valid_from),
        (3, versions[3].valid_from),
        (4, None),
    ]
    assert chain == expected


def test_versions_start_in_the_order_they_were_seen(
    node: Devnode, list_only: Settings
) -> None:
    session_id = changed_three_times(node, list_only)

    with Store.open(list_only) as store:
        starts = [v.valid_from for v in store.history(session_id)]

    assert starts == sorted(set(starts))


def test_versions_keep_each_status_seen(node: Devnode, list_only: Settings) -> None:
    session_id = changed_three_times(node, list_only)

    with Store.open(list_only) as store:
        statuses = [v.status for v in store.history(session_id)][1:]

    assert statuses == ["scripted-1", "scripted-2", "scripted-3"]


def test_session_row_is_the_newest_version(node: Devnode, list_only: Settings) -> None:
    session_id = changed_three_times(node, list_only)

    with Store.open(list_only) as store:
        session = store.session(session_id)
    assert session is not None

    assert (session.version, session.status) == (4, "scripted-3")


def test_unchanged_resync_writes_no_session_rows(list_only: Settings) -> None:
    db_path = list_only.cache.db_path
    sync(list_only)
    before = query(db_path, "SELECT session_id, change_seq FROM sessions ORDER BY 1")

    sync(list_only)

    after = query(db_path, "SELECT session_id, change_seq FROM sessions ORDER BY 1")
    assert after == before


def test_unchanged_resync_adds_no_history(list_only: Settings) -> None:
    db_path = list_only.cache.db_path
    sync(list_only)
    before = scalar(db_path, "SELECT count(*) FROM session_history")

    sync(list_only)

    after = scalar(db_path, "SELECT count(*) FROM session_history")
    assert after == before


def test_unchanged_resync_counts_every_session_unchanged(list_only: Settings) -> None:
    sync(list_only)

    summary = sync(list_only)

    counts = summary.counts
    assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 10)


def test_only_changed_sessions_get_new_versions(
    node: Devnode, list_only: Settings
) -> None:
    db_path = list_only.cache.db_path
    sync(list_only)
    ids = listed_ids(node)
    before = dict(query(db_path, "SELECT session_id, version FROM sessions"))
    patch(node, ids[2], status="scripted")
    patch(node, ids[5], hostname="moved.example.internal")

    sync(list_only)

    after = dict(query(db_path, "SELECT session_id, version FROM sessions"))
    bumped = sorted(sid for sid, version in after.items() if version != before[sid])
    assert bumped == sorted([ids[2], ids[5]])


def test_changed_sessions_are_counted(node: Devnode, list_only: Settings) -> None:
    sync(list_only)
    ids = listed_ids(node)
    patch(node, ids[2], status="scripted")
    patch(node, ids[5], hostname="moved.example.internal")

    summary = sync(list_only)

    counts = summary.counts
    assert (counts.new, counts.changed, counts.unchanged) == (0, 2, 8)


def test_unknown_fields_alone_make_no_version(
    node: Devnode, list_only: Settings
) -> None:
    db_path = list_only.cache.db_path
    sync(list_only)
    session_id = listed_ids(node)[0]
    patch(node, session_id, build_label="nightly")

    sync(list_only)

    versions = scalar(
        db_path, "SELECT version FROM sessions WHERE session_id = ?", session_id
    )
    assert versions == 1


# -- parsing only what changed ---------------------------------------------------


def known_digests(settings: Settings) -> dict[str, bytes]:
    with Store.open(settings) as store:
        index = store.session_index()
    return {sid: entry.wire_digest for sid, entry in index.items() if entry.wire_digest}


def listing_now(settings: Settings, known: dict[str, bytes]) -> SessionListing:
    with NodeClient(settings.node) as client:
        return client.read_listing(known)


def test_a_resync_parses_only_the_sessions_whose_items_changed(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    ids = listed_ids(node)
    patch(node, ids[3], status="scripted")

    listing = listing_now(list_only, known_digests(list_only))

    assert [record.session_id for record in listing.records] == [ids[3]]
    assert sorted(listing.unchanged) == sorted(set(ids) - {ids[3]})


def test_a_cache_from_before_wire_digests_learns_them_without_new_versions(
    node: Devnode, list_only: Settings
) -> None:
    db_path = list_only.cache.db_path
    sync(list_only)
    downgrade(db_path, "0001")
    before = query(db_path, "SELECT session_id, version, change_seq FROM sessions")

    sync(list_only)

    after = query(db_path, "SELECT session_id, version, change_seq FROM sessions")
    assert sorted(after) == sorted(before)
    assert len(listing_now(list_only, known_digests(list_only)).records) == 0


def test_a_version_seen_by_show_is_checked_again_when_relisted(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    session_id = listed_ids(node)[-1]
    first_status = scalar(
        list_only.cache.db_path,
        "SELECT status FROM sessions WHERE session_id = ?",
        session_id,
    )
    shrink_window(node, 4)
    patch(node, session_id, status="scripted")
    sync(list_only)
    patch(node, session_id, status=first_status)
    shrink_window(node, 10)

    sync(list_only)

    with Store.open(list_only) as store:
        statuses = [version.status for version in store.history(session_id)]
    assert statuses == [first_status, "scripted", first_status]


# -- listed, aged out, gone ------------------------------------------------------


def test_sessions_off_the_list_are_aged_out(node: Devnode, list_only: Settings) -> None:
    sync(list_only)
    ids = listed_ids(node)
    shrink_window(node, 4)

    sync(list_only)

    presence = dict(
        query(list_only.cache.db_path, "SELECT session_id, presence FROM sessions")
    )
    expected = {
        sid: "listed" if index < 4 else "aged_out" for index, sid in enumerate(ids)
    }
    assert presence == expected


def test_aged_out_sessions_keep_their_fields(
    node: Devnode, list_only: Settings
) -> None:
    fields_sql = (
        "SELECT session_id, status, hostname, username, script, resource_id, started_at, "
        "ended_at, version FROM sessions ORDER BY session_id"
    )
    sync(list_only)
    before = query(list_only.cache.db_path, fields_sql)
    shrink_window(node, 4)

    sync(list_only)

    after = query(list_only.cache.db_path, fields_sql)
    assert after == before


def test_aged_out_sessions_are_counted(node: Devnode, list_only: Settings) -> None:
    sync(list_only)
    shrink_window(node, 4)

    summary = sync(list_only)

    assert (summary.counts.aged_out, summary.counts.gone) == (6, 0)


def test_purged_session_is_gone(node: Devnode, list_only: Settings) -> None:
    sync(list_only)
    session_id = listed_ids(node)[3]
    admin(node, "POST", f"sessions/{session_id}/purge")

    summary = sync(list_only)

    with Store.open(list_only) as store:
        session = store.session(session_id)
    assert session is not None
    assert (session.presence, summary.counts.gone) == ("gone", 1)


def test_gone_session_records_when_it_went(node: Devnode, list_only: Settings) -> None:
    first = sync(list_only)
    session_id = listed_ids(node)[3]
    admin(node, "POST", f"sessions/{session_id}/purge")

    sync(list_only)

    with Store.open(list_only) as store:
        session = store.session(session_id)
        listed_at = store.sync_run(first.sync_id).listed_at  # type: ignore[union-attr]
    assert session is not None
    assert session.presence_changed_at is not None
    assert session.presence_changed_at > listed_at


def test_purged_aged_out_session_is_gone_at_recheck(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    session_id = listed_ids(node)[-1]
    shrink_window(node, 4)
    sync(list_only)
    admin(node, "POST", f"sessions/{session_id}/purge")

    sync(list_only)

    presence = scalar(
        list_only.cache.db_path,
        "SELECT presence FROM sessions WHERE session_id = ?",
        session_id,
    )
    assert presence == "gone"


SHOW_OUTAGES = [
    pytest.param({"down": True, "routes": ["show"]}, id="show-connection-dropped"),
    pytest.param({"unavailable_count": -1, "routes": ["show"]}, id="show-503"),
    pytest.param({"html_502_count": -1, "routes": ["show"]}, id="show-html-502"),
    pytest.param({"down": True}, id="node-down-after-list"),
]


def sync_with_show_outage(
    node: Devnode, settings: Settings, faults: dict[str, Any]
) -> SyncSummary:
    """Sync once with sessions missing from the list while show cannot be answered."""
    sync(settings)
    shrink_window(node, 4)
    if "routes" in faults:
        set_faults(node, **faults)
        return sync(settings)
    return sync(settings, after_list=lambda: set_faults(node, **faults))


@pytest.mark.parametrize("faults", SHOW_OUTAGES)
def test_unanswered_show_leaves_sessions_listed(
    node: Devnode, list_only: Settings, faults: dict[str, Any]
) -> None:
    sync_with_show_outage(node, list_only, faults)

    presence = query(list_only.cache.db_path, "SELECT DISTINCT presence FROM sessions")

    assert presence == [("listed",)]


@pytest.mark.parametrize("faults", SHOW_OUTAGES)
def test_unanswered_show_makes_the_run_partial(
    node: Devnode, list_only: Settings, faults: dict[str, Any]
) -> None:
    summary = sync_with_show_outage(node, list_only, faults)

    outcome = last_run(list_only.cache.db_path)

    assert (summary.outcome, outcome) == (
        "partial",
        ("partial", "the node did not answer about 6 missing sessions"),
    )


# -- the gap warning -------------------------------------------------------------


def newest_start(db_path: Path) -> datetime | None:
    starts = query(
        db_path, "SELECT started_at FROM sessions WHERE started_at IS NOT NULL"
    )
    return max((parse_timestamp(row[0]) for row in starts), default=None)


def sync_across_a_gap(
    node: Devnode, settings: Settings
) -> tuple[SyncSummary, list[str]]:
    """Sync, then let more new sessions arrive than the list shows, and sync again."""
    shrink_window(node, 5)
    sync(settings)
    created = [
        str(admin(node, "POST", "sessions", json={})["session_id"]) for _ in range(5)
    ]
    return sync(settings), created


def test_list_sharing_nothing_with_the_previous_warns_once(
    node: Devnode, list_only: Settings
) -> None:
    summary, _created = sync_across_a_gap(node, list_only)

    assert len(summary.warnings) == 1


def test_an_empty_list_after_a_full_one_warns_and_asks_about_each(
    node: Devnode, list_only: Settings
) -> None:
    listed = len(listed_ids(node))
    sync(list_only)
    shrink_window(node, 0)

    summary = sync(list_only)

    assert summary.warnings == [
        f"the node listed no sessions, where the previous list had {listed}; "
        "each is asked about with show before it counts as aged out or gone"
    ]
    assert (summary.counts.aged_out, summary.counts.gone) == (listed, 0)


def test_gap_warning_names_the_span_and_the_interval(
    node: Devnode, list_only: Settings
) -> None:
    summary, _created = sync_across_a_gap(node, list_only)

    warning = summary.warnings[0]

    named = [
        part
        for part in (
            format_timestamp(summary.counts.gap_from),
            format_timestamp(summary.counts.gap_to),
            format_duration(list_only.sync.interval),
            "sync.interval",
        )
        if part is not None and part in warning
    ]
    assert len(named) == 4, warning


def test_gap_spans_from_the_newest_seen_to_the_oldest_new(
    node: Devnode, list_only: Settings
) -> None:
    shrink_window(node, 5)
    sync(list_only)
    newest_seen = newest_start(list_only.cache.db_path)
    created = [admin(node, "POST", "sessions", json={}) for _ in range(5)]
    oldest_new = min(parse_timestamp(item["started_at"]) for item in created)

    summary = sync(list_only)

    assert (summary.counts.gap_from, summary.counts.gap_to) == (newest_seen, oldest_new)


def test_gap_is_recorded_on_the_run(node: Devnode, list_only: Settings) -> None:
    summary, _created = sync_across_a_gap(node, list_only)

    with Store.open(list_only) as store:
        run = store.sync_run(summary.sync_id)
    assert run is not None

    assert (run.gap_from, run.gap_to) == (
        summary.counts.gap_from,
        summary.counts.gap_to,
    )


def test_list_after_an_empty_one_is_compared_with_the_last_non_empty(
    node: Devnode, list_only: Settings
) -> None:
    shrink_window(node, 5)
    sync(list_only)
    newest_seen = newest_start(list_only.cache.db_path)
    shrink_window(node, 0)
    sync(list_only)
    for _ in range(5):
        admin(node, "POST", "sessions", json={})
    shrink_window(node, 5)

    summary = sync(list_only)

    assert (len(summary.warnings), summary.counts.gap_from) == (1, newest_seen)


def test_list_after_an_empty_one_sharing_sessions_gives_no_warning(
    node: Devnode, list_only: Settings
) -> None:
    shrink_window(node, 5)
    sync(list_only)
    shrink_window(node, 0)
    sync(list_only)
    shrink_window(node, 5)

    summary = sync(list_only)

    assert (summary.warnings, summary.counts.new) == ([], 0)


def test_overlapping_list_gives_no_gap_warning(
    node: Devnode, list_only: Settings
) -> None:
    shrink_window(node, 5)
    sync(list_only)
    for _ in range(4):
        admin(node, "POST", "sessions", json={})

    summary = sync(list_only)

    assert (summary.warnings, summary.counts.gap_from) == ([], None)


# -- refreshing one session ------------------------------------------------------


def refresh(settings: Settings, session_id: str) -> bool:
    with Store.open(settings) as store, NodeClient(settings.node) as client:
        return refresh_session(store, client, session_id)


def test_refresh_adds_the_version_show_sees(node: Devnode, list_only: Settings) -> None:
    sync(list_only)
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="scripted")

    refresh(list_only, session_id)

    with Store.open(list_only) as store:
        newest = store.history(session_id)[-1]
    assert (newest.version, newest.status, newest.observed_via) == (
        2,
        "scripted",
        "show",
    )


def test_refresh_of_a_purged_session_marks_it_gone(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    session_id = listed_ids(node)[0]
    admin(node, "POST", f"sessions/{session_id}/purge")

    with pytest.raises(SessionNotFoundError):
        refresh(list_only, session_id)

    with Store.open(list_only) as store:
        session = store.session(session_id)
    assert session is not None
    assert session.presence == "gone"


def test_refresh_mirrors_a_session_never_listed_as_aged_out(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    session_id = admin(node, "POST", "sessions", json={})["session_id"]
    shrink_window(node, 0)

    fresh = refresh(list_only, session_id)

    with Store.open(list_only) as store:
        session = store.session(session_id)
    assert session is not None
    assert (fresh, session.presence, session.version) == (True, "aged_out", 1)


# -- pulls -----------------------------------------------------------------------


def test_new_sessions_are_pulled(pulling: Settings) -> None:
    summary = sync(pulling)

    unpulled = scalar(
        pulling.cache.db_path,
        "SELECT count(*) FROM sessions WHERE last_pull_id IS NULL",
    )

    assert (summary.counts.pulled, unpulled) == (10, 0)


def test_unchanged_resync_pulls_nothing(node: Devnode, pulling: Settings) -> None:
    sync(pulling)

    sync(pulling)

    assert admin(node, "GET", "requests")["pull"] == 10


def test_changed_status_is_pulled_again(node: Devnode, pulling: Settings) -> None:
    sync(pulling)
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="scripted")

    summary = sync(pulling)

    pulls = scalar(
        pulling.cache.db_path,
        "SELECT count(*) FROM pulls WHERE session_id = ?",
        session_id,
    )
    assert (summary.counts.pulled, pulls) == (1, 2)


def test_same_content_in_two_pulls_is_one_blob(
    node: Devnode, pulling: Settings
) -> None:
    db_path = pulling.cache.db_path
    sync(pulling)
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="scripted")
    sync(pulling)

    shared = query(
        db_path,
        "SELECT a.name, count(*), count(DISTINCT a.sha256), "
        "(SELECT count(*) FROM _vxcache_blobs b WHERE b.sha256 = a.sha256) "
        "FROM artifacts a WHERE a.session_id = ? GROUP BY a.name ORDER BY a.name",
        session_id,
    )

    assert shared == [
        ("bundle.tar.gz", 2, 1, 1),
        ("main.tf", 2, 1, 1),
        ("outputs.json", 2, 1, 1),
        ("plan.txt", 2, 1, 1),
    ]


def test_artifact_blob_holds_the_artifact(node: Devnode, pulling: Settings) -> None:
    session_id = listed_ids(node)[0]
    sync(pulling)

    with Store.open(pulling) as store:
        artifact = next(a for a in store.artifacts(session_id) if a.name == "main.tf")
        content = store.blob(artifact.sha256)

    assert content is not None
    assert (len(content), content.startswith(b"terraform {")) == (
        artifact.size_bytes,
        True,
    )


def pulled_state(node: Devnode, session_id: str) -> dict[str, Any]:
    return dict(node_post(node, "pull", session_id)["terraform_state"])


def test_terraform_state_is_summarised(node: Devnode, pulling: Settings) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")
    state = pulled_state(node, session_id)

    sync(pulling)

    row = query(
        pulling.cache.db_path,
        "SELECT terraform_version, serial, lineage, format_version FROM terraform_states "
        "WHERE session_id = ?",
        session_id,
    )
    assert row == [(state["terraform_version"], state["serial"], state["lineage"], 4)]


def test_terraform_resources_are_listed(node: Devnode, pulling: Settings) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")

    sync(pulling)

    db_path = pulling.cache.db_path
    resource_count = scalar(
        db_path,
        "SELECT resource_count FROM terraform_states WHERE session_id = ?",
        session_id,
    )
    addresses = {
        row[0]
        for row in query(
            db_path,
            "SELECT address FROM terraform_resources WHERE session_id = ?",
            session_id,
        )
    }
    core = {
        "data.aws_caller_identity.current",
        "module.network.aws_vpc.this",
        "module.network.aws_subnet.private",
        "random_password.db",
        "aws_db_instance.main",
        "aws_instance.app",
    }
    assert (len(addresses), core <= addresses) == (resource_count, True)


def stored_state(db_path: Path, session_id: str) -> dict[str, Any]:
    sha256 = scalar(
        db_path,
        "SELECT state_sha256 FROM terraform_states WHERE session_id = ?",
        session_id,
    )
    data = scalar(db_path, "SELECT data FROM _vxcache_blobs WHERE sha256 = ?", sha256)
    return dict(json.loads(zlib.decompress(data)))


def test_sensitive_outputs_are_redacted_by_default(
    node: Devnode, pulling: Settings
) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")

    sync(pulling)

    outputs = stored_state(pulling.cache.db_path, session_id)["outputs"]
    assert (outputs["db_password"]["value"], outputs["api_token"]["value"]) == (
        REDACTED,
        REDACTED,
    )


def test_sensitive_values_appear_nowhere_in_the_blobs(
    node: Devnode, pulling: Settings
) -> None:
    ids = listed_ids(node)
    for session_id in ids:
        patch(node, session_id, status="succeeded")
    secrets = sensitive_output_values(node, ids)

    sync(pulling)

    contents = blob_contents(pulling.cache.db_path)
    leaked = sorted(
        s for s in secrets if any(s.encode() in content for content in contents)
    )
    assert (len(secrets), leaked) == (2 * len(ids), [])


def test_store_sensitive_keeps_sensitive_outputs(node: Devnode, db_path: Path) -> None:
    settings = settings_for(node, db_path, cache={"store_sensitive": True})
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")
    expected = pulled_state(node, session_id)["outputs"]["db_password"]["value"]

    sync(settings)

    outputs = stored_state(db_path, session_id)["outputs"]
    assert outputs["db_password"]["value"] == expected


def artifact_content(settings: Settings, session_id: str, name: str) -> bytes:
    with Store.open(settings) as store:
        artifact = next(a for a in store.artifacts(session_id) if a.name == name)
        content = store.blob(artifact.sha256)
    assert content is not None
    return content


def node_artifacts(node: Devnode, session_id: str) -> dict[str, str]:
    artifacts = node_post(node, "pull", session_id)["artifacts"]
    return {item["name"]: item["content"] for item in artifacts}


def test_outputs_artifact_keeps_what_is_not_sensitive(
    node: Devnode, pulling: Settings
) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")
    sent = json.loads(node_artifacts(node, session_id)["outputs.json"])

    sync(pulling)

    kept = json.loads(artifact_content(pulling, session_id, "outputs.json"))
    masked = "*" * len(sent["db_password"]["value"])
    assert kept == {
        **sent,
        "db_password": {**sent["db_password"], "value": masked},
        "api_token": {
            **sent["api_token"],
            "value": "*" * len(sent["api_token"]["value"]),
        },
    }


def test_bundle_stays_a_readable_archive(node: Devnode, pulling: Settings) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")

    sync(pulling)

    bundle = artifact_content(pulling, session_id, "bundle.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as archive:
        outputs = json.loads(archive.extractfile("outputs.json").read())  # type: ignore[union-attr]
    assert set(outputs["db_password"]["value"]) == {"*"}


def test_store_sensitive_keeps_artifacts_as_sent(node: Devnode, db_path: Path) -> None:
    settings = settings_for(node, db_path, cache={"store_sensitive": True})
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")
    sent = node_artifacts(node, session_id)["outputs.json"]

    sync(settings)

    assert artifact_content(settings, session_id, "outputs.json") == sent.encode()


def unreadable_pull(secret: str) -> PullResult:
    """A pull whose state has a format vxcache cannot read, so cannot redact."""
    state = {"version": 99, "outputs": {"token": {"value": secret, "sensitive": True}}}
    return PullResult(
        session_id="ses_unreadable",
        body={
            "session_id": "ses_unreadable",
            "terraform_state": state,
            "artifacts": [],
        },
        state=state,
        artifacts=(),
        size_bytes=100,
        sha256="0" * 64,
    )


def test_unreadable_state_is_not_kept_when_redacting() -> None:
    prepared = pull_input(
        unreadable_pull("tok_unreadable_secret"), store_sensitive=False
    )

    assert (prepared.state, b"tok_unreadable_secret" in prepared.body) == (None, False)


def test_unreadable_state_is_kept_verbatim_with_store_sensitive() -> None:
    prepared = pull_input(
        unreadable_pull("tok_unreadable_secret"), store_sensitive=True
    )

    assert (prepared.state, b"tok_unreadable_secret" in prepared.body) == (None, True)


def test_pull_counts_redacted_values(node: Devnode, pulling: Settings) -> None:
    session_id = listed_ids(node)[0]
    patch(node, session_id, status="succeeded")

    sync(pulling)

    redacted = scalar(
        pulling.cache.db_path,
        "SELECT redacted_values FROM pulls WHERE session_id = ?",
        session_id,
    )
    # Two sensitive outputs, the password's result and the database password.
    assert redacted == 4


def fail_one_pull(node: Devnode, settings: Settings) -> tuple[str, int, SyncSummary]:
    """Pull everything, change one session, and fail its next pull."""
    sync(settings)
    session_id = listed_ids(node)[0]
    previous = scalar(
        settings.cache.db_path,
        "SELECT last_pull_id FROM sessions WHERE session_id = ?",
        session_id,
    )
    patch(node, session_id, status="scripted")
    set_faults(node, unavailable_count=-1, routes=["pull"])
    return session_id, previous, sync(settings)


def test_failing_pull_keeps_the_previous_pull(node: Devnode, pulling: Settings) -> None:
    session_id, previous, _summary = fail_one_pull(node, pulling)

    row = query(
        pulling.cache.db_path,
        "SELECT last_pull_id, pull_wanted FROM sessions WHERE session_id = ?",
        session_id,
    )

    assert row == [(previous, 1)]


def test_failing_pull_makes_the_run_partial(node: Devnode, pulling: Settings) -> None:
    _session_id, _previous, summary = fail_one_pull(node, pulling)

    outcome = last_run(pulling.cache.db_path)[0]

    assert (summary.outcome, summary.counts.pull_failed, outcome) == (
        "partial",
        1,
        "partial",
    )


def test_next_sync_pulls_what_failed(node: Devnode, pulling: Settings) -> None:
    session_id, previous, _summary = fail_one_pull(node, pulling)
    set_faults(node)

    summary = sync(pulling)

    last_pull_id, wanted = query(
        pulling.cache.db_path,
        "SELECT last_pull_id, pull_wanted FROM sessions WHERE session_id = ?",
        session_id,
    )[0]
    assert (summary.outcome, summary.counts.pulled, wanted) == ("ok", 1, 0)
    assert last_pull_id > previous


# -- a malformed list ------------------------------------------------------------

MALFORMED_LISTS = [
    pytest.param({"html_502_count": 1}, "502", id="html-502"),
    pytest.param({"truncate_count": 1}, "list", id="truncated"),
    pytest.param({"garbage_count": 1}, "expected a list of sessions", id="garbage"),
    pytest.param({"empty_body_count": 1}, "list", id="empty-body"),
]


@pytest.mark.parametrize(("faults", "message"), MALFORMED_LISTS)
def test_malformed_list_raises_upstream_error(
    node: Devnode, list_only: Settings, faults: dict[str, Any], message: str
) -> None:
    sync(list_only)
    set_faults(node, routes=["list"], **faults)

    with pytest.raises(UpstreamError, match=message):
        sync(list_only)


@pytest.mark.parametrize(("faults", "message"), MALFORMED_LISTS)
def test_malformed_list_leaves_the_cache_as_it_was(
    node: Devnode, list_only: Settings, faults: dict[str, Any], message: str
) -> None:
    sync(list_only)
    patch(node, listed_ids(node)[0], status="scripted")
    before = session_rows(list_only.cache.db_path)
    set_faults(node, routes=["list"], **faults)

    with pytest.raises(UpstreamError):
        sync(list_only)

    assert session_rows(list_only.cache.db_path) == before


@pytest.mark.parametrize(("faults", "message"), MALFORMED_LISTS)
def test_malformed_list_records_a_failed_run(
    node: Devnode, list_only: Settings, faults: dict[str, Any], message: str
) -> None:
    sync(list_only)
    set_faults(node, routes=["list"], **faults)

    with pytest.raises(UpstreamError) as raised:
        sync(list_only)

    assert last_run(list_only.cache.db_path) == ("failed", str(raised.value))


def test_garbage_list_is_a_data_error(node: Devnode, list_only: Settings) -> None:
    set_faults(node, routes=["list"], garbage_count=1)

    with pytest.raises(UpstreamDataError, match="expected a list of sessions"):
        sync(list_only)


# -- one sync at a time ----------------------------------------------------------


@pytest.fixture
def impatient(node: Devnode, db_path: Path) -> Settings:
    """Settings whose second sync gives up on the lock after 0.3 s."""
    return settings_for(node, db_path, sync={"pull": False, "lock_timeout": "0.3s"})


def test_second_sync_raises_cache_busy(impatient: Settings) -> None:
    with (
        sync_lock(impatient),
        pytest.raises(
            CacheBusyError,
            match=r"another sync is running on .*cache\.db; waited .*try again",
        ),
    ):
        sync(impatient)


def test_second_sync_waits_for_the_lock_timeout(impatient: Settings) -> None:
    started = time.monotonic()
    with sync_lock(impatient), pytest.raises(CacheBusyError):
        sync(impatient)

    waited = time.monotonic() - started

    assert 0.3 <= waited < 3


def test_second_sync_records_no_run(impatient: Settings) -> None:
    Store.open(impatient).close()
    with sync_lock(impatient), pytest.raises(CacheBusyError):
        sync(impatient)

    runs = scalar(impatient.cache.db_path, "SELECT count(*) FROM sync_runs")

    assert runs == 0


def test_second_sync_starts_once_the_first_is_done(impatient: Settings) -> None:
    with sync_lock(impatient):
        pass

    summary = sync(impatient)

    assert summary.outcome == "ok"


def test_sync_running_in_a_thread_makes_a_second_one_busy(
    node: Devnode, impatient: Settings
) -> None:
    set_faults(node, latency_seconds=0.5, routes=["list"])
    first: list[SyncSummary] = []
    thread = threading.Thread(target=lambda: first.append(sync(impatient)))
    thread.start()
    poll(
        lambda: admin(node, "GET", "requests")["list"] == 1,
        seconds=10,
        what="the first sync to list",
    )

    with pytest.raises(CacheBusyError):
        sync(impatient)

    thread.join(timeout=10)
    assert [summary.outcome for summary in first] == ["ok"]


# -- reads while a sync writes ---------------------------------------------------


def test_reads_during_a_slow_sync_never_fail(
    devnode_factory: DevnodeFactory, db_path: Path
) -> None:
    node = devnode_factory(sessions=60, window=30)
    settings = settings_for(node, db_path)
    Store.open(settings).close()
    set_faults(node, latency_seconds=0.05, routes=["pull"])
    errors: list[BaseException] = []
    seen_pulls: set[int] = set()
    thread = threading.Thread(target=lambda: sync(settings))
    thread.start()

    with Store.open(settings) as reader:
        while thread.is_alive():
            try:
                reader.list_sessions(SessionFilter(limit=None))
                seen_pulls.add(scalar(db_path, "SELECT count(*) FROM pulls"))
            except Exception as exc:
                errors.append(exc)
    thread.join()

    assert (errors, len(seen_pulls) > 2) == ([], True)


# -- interrupted syncs -----------------------------------------------------------


def interrupt() -> None:
    raise KeyboardInterrupt


def test_interrupted_sync_is_recorded_failed(list_only: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        sync(list_only, after_list=interrupt)

    assert last_run(list_only.cache.db_path) == ("failed", "interrupted")


def test_interrupted_sync_leaves_the_cache_as_it_was(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    patch(node, listed_ids(node)[0], status="scripted")
    before = session_rows(list_only.cache.db_path)

    with pytest.raises(KeyboardInterrupt):
        sync(list_only, after_list=interrupt)

    assert session_rows(list_only.cache.db_path) == before


def test_sync_after_an_interrupted_one_catches_up(
    node: Devnode, list_only: Settings
) -> None:
    sync(list_only)
    patch(node, listed_ids(node)[0], status="scripted")
    with pytest.raises(KeyboardInterrupt):
        sync(list_only, after_list=interrupt)

    summary = sync(list_only)

    assert (summary.outcome, summary.counts.changed) == ("ok", 1)


def test_pulls_stop_once_the_node_fails_many_in_a_row(
    devnode_factory: DevnodeFactory, db_path: Path
) -> None:
    node = devnode_factory(sessions=60, window=60)
    settings = settings_for(node, db_path, max_attempts=1)
    set_faults(node, down=True, routes=["pull"])

    failing = sync(settings)
    asked = node.requests()["pull"]
    set_faults(node)
    after = sync(settings)

    assert (failing.outcome, failing.counts.pulled, failing.counts.pull_failed) == (
        "partial", 0, 60,
    )  # fmt: skip
    # Eight in a row, plus what the workers sent before the sync caught up:
    # far short of asking about all 60.
    assert 8 <= asked <= 30
    assert (after.outcome, after.counts.pulled) == ("ok", 60)


def test_interrupt_while_pulling_keeps_whole_pulls(pulling: Settings) -> None:
    def stop_after_three(phase: str, done: int, _total: int) -> None:
        if phase == "pull" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync(pulling, progress=stop_after_three)

    db_path = pulling.cache.db_path
    pulled = query(
        db_path,
        "SELECT count(*), count(DISTINCT s.pull_id), "
        "(SELECT count(*) FROM sessions WHERE last_pull_id IS NOT NULL) "
        "FROM pulls p JOIN terraform_states s ON s.pull_id = p.pull_id",
    )
    assert (pulled, last_run(db_path)) == ([(3, 3, 3)], ("failed", "interrupted"))


# -- a sync killed mid-pull ------------------------------------------------------

CHILD_SYNC = """
import json, sys
from vxcache.client import NodeClient
from vxcache.config import load_settings
from vxcache.store import Store
from vxcache.sync import run_sync

settings = load_settings(overrides=json.loads(sys.argv[1]), environ={})
with Store.open(settings) as store, NodeClient(settings.node) as client:
    run_sync(store, client, settings)
"""


def wait_for_some_pulls(db_path: Path) -> None:
    """Wait until a sync in another process has stored a few pulls."""
    poll(
        lambda: scalar(db_path, "SELECT count(*) FROM pulls") >= 3,
        seconds=30,
        what="the sync in the child process to store some pulls",
    )


def kill_a_sync_mid_pull(node: Devnode, db_path: Path) -> None:
    """Run a sync in a child process and SIGKILL it once some pulls have landed."""
    overrides = {
        "node": {"url": node.url, "token": node.token, "max_attempts": 1},
        "cache": {"path": str(db_path)},
    }
    Store.open(make_settings(node, db_path)).close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SYNC, json.dumps(overrides)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_some_pulls(db_path)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)


@pytest.fixture
def slow_pulls(devnode_factory: DevnodeFactory, db_path: Path) -> Devnode:
    """A node whose pulls are big and slow: 12 listed sessions of 500 kB states."""
    node = devnode_factory(sessions=40, window=12, state_bytes=500_000)
    for session_id in listed_ids(node):
        patch(node, session_id, status="succeeded")
    set_faults(node, latency_seconds=0.2, routes=["pull"])
    return node


@pytest.mark.slow
def test_sync_killed_mid_pull_leaves_an_intact_cache(
    slow_pulls: Devnode, db_path: Path
) -> None:
    kill_a_sync_mid_pull(slow_pulls, db_path)

    with closing(sqlite3.connect(db_path)) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchall()
        killed = connection.execute(
            "SELECT outcome, count(*) FROM sync_runs"
        ).fetchall()
        unpulled = connection.execute(
            "SELECT count(*) FROM sessions WHERE last_pull_id IS NULL"
        ).fetchall()

    assert (integrity, killed, unpulled[0][0] > 0) == ([("ok",)], [(None, 1)], True)


def sigterm_mid_pull(node: Devnode, db_path: Path, *command: str) -> tuple[int, str]:
    """Run a vxcache command, SIGTERM it once some pulls landed; return code, stderr."""
    Store.open(make_settings(node, db_path)).close()
    child = subprocess.Popen(
        [sys.executable, "-m", "vxcache", "--db", str(db_path), *command],
        env={**os.environ, "VXCACHE_NODE_URL": node.url, "VXCACHE_TOKEN": node.token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_some_pulls(db_path)
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    return child.returncode, err


@pytest.mark.slow
def test_sigterm_stops_a_sync_command_as_ctrl_c_does(
    slow_pulls: Devnode, db_path: Path
) -> None:
    returncode, err = sigterm_mid_pull(slow_pulls, db_path, "sync")

    runs = query(db_path, "SELECT outcome, error FROM sync_runs")
    assert (returncode, err.strip().splitlines()[-1]) == (143, "Terminated.")
    assert runs == [("failed", "interrupted")]


@pytest.mark.slow
def test_a_stopped_sync_keeps_its_pulls_and_the_next_finishes(
    slow_pulls: Devnode, db_path: Path
) -> None:
    settings = settings_for(slow_pulls, db_path)
    Store.open(settings).close()
    stop = threading.Event()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            sync(settings, stop=stop)
        except SyncStoppedError as exc:
            raised.append(exc)

    syncing = threading.Thread(target=run)
    syncing.start()
    wait_for_some_pulls(db_path)
    stop.set()
    syncing.join(timeout=30)
    kept = scalar(db_path, "SELECT count(*) FROM pulls")
    runs = query(db_path, "SELECT outcome, error FROM sync_runs")
    summary = sync(settings)

    assert (len(raised), runs) == (1, [("failed", "interrupted")])
    assert 3 <= kept < 12  # it stopped early and kept what it had
    assert (summary.outcome, summary.counts.pulled) == ("ok", 12 - kept)


@pytest.mark.slow
def test_sigterm_stops_a_scheduled_sync_early_and_exits_cleanly(
    slow_pulls: Devnode, db_path: Path
) -> None:
    returncode, err = sigterm_mid_pull(slow_pulls, db_path, "sync", "--every", "1h")

    runs = query(db_path, "SELECT outcome, error FROM sync_runs")
    assert (returncode, runs) == (0, [("failed", "interrupted")])
    assert "SIGTERM: stopping; a running sync ends after its current answer" in err
    assert scalar(db_path, "SELECT count(*) FROM pulls") < 12
    assert "Traceback" not in err


@pytest.mark.slow
def test_sync_after_a_killed_one_closes_it_and_pulls_the_rest(
    slow_pulls: Devnode, db_path: Path
) -> None:
    kill_a_sync_mid_pull(slow_pulls, db_path)
    set_faults(slow_pulls)
    settings = settings_for(slow_pulls, db_path)

    summary = sync(settings)

    runs = query(db_path, "SELECT outcome, error FROM sync_runs ORDER BY sync_id")
    lost = query(
        db_path,
        "SELECT count(*) FROM sessions s LEFT JOIN pulls p ON p.pull_id = s.last_pull_id "
        "LEFT JOIN terraform_states t ON t.pull_id = s.last_pull_id "
        "WHERE s.presence != 'listed' OR s.pull_wanted OR p.pull_id IS NULL OR t.pull_id IS NULL",
    )
    sessions = scalar(db_path, "SELECT count(*) FROM sessions")
    assert (runs, summary.outcome, sessions, lost) == (
        [("failed", "interrupted before it finished"), ("ok", None)],
        "ok",
        12,
        [(0,)],
    )
