"""The query part: the DuckDB replica, the SQL sandbox, sessions_as_of and exports."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import filelock
import orjson
import pyarrow.parquet as pq
import pytest
from conftest import make_settings
from sqlalchemy import text

from vxcache._time import format_timestamp
from vxcache.config import Settings
from vxcache.errors import (
    CacheBusyError,
    MigrationError,
    QueryError,
    StoreError,
    UsageError,
)
from vxcache.query import (
    _files,
    _instances,
    _load,
    _replica,
    _schema,
    _watchdog,
    open_readonly,
    refresh_replica,
    replica_path,
    run_query,
)
from vxcache.query.export import export_snapshot
from vxcache.records import SessionRecord
from vxcache.store import (
    SCHEMA_REVISION,
    ArtifactInput,
    ListingChanges,
    PullInput,
    StateInput,
    Store,
    SyncCounts,
)
from vxcache.store._engine import ensure_schema
from vxcache.store._types import ChangedSession
from vxcache.terraform import TerraformResource

NOW = datetime.now(UTC).replace(microsecond=0)


def record(
    session_id: str,
    status: str = "succeeded",
    *,
    script: str | None = "deploy",
    hostname: str | None = "web-1",
    username: str | None = "alice",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> SessionRecord:
    """Return a session as the node would list it."""
    return SessionRecord(
        session_id=session_id,
        status=status,
        hostname=hostname,
        username=username,
        script=script,
        started_at=started_at or NOW - timedelta(hours=1),
        ended_at=ended_at,
    )


class CacheBuilder:
    """Writes a small cache through the real store, the way a sync writes it."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.store = Store(db_path)
        ensure_schema(self.store.engine)
        self.versions: dict[str, int] = {}

    def sync(
        self,
        at: datetime,
        *,
        new: Iterable[SessionRecord] = (),
        changed: Iterable[SessionRecord] = (),
        aged_out: Iterable[SessionRecord] = (),
        gone: Iterable[str] = (),
        outcome: str = "ok",
        error: str | None = None,
    ) -> int:
        """Record one sync run that saw these sessions."""
        new, changed, aged_out = list(new), list(changed), list(aged_out)
        sync_id = self.store.begin_sync(trigger="schedule", started_at=at)
        if outcome != "failed":
            changes = ListingChanges(new=new, changed=[self._next(r) for r in changed])
            self.store.apply_listing(changes, sync_id=sync_id, observed_at=at)
        if aged_out or gone:
            self.store.apply_observations(
                sync_id=sync_id,
                observed_at=at,
                aged_out=[(r, None) for r in aged_out],
                gone=list(gone),
            )
        self.versions.update((r.session_id, 1) for r in new)
        counts = SyncCounts(
            outcome=outcome,
            listed_at=None if outcome == "failed" else at,
            finished_at=at,
            new=len(new),
            changed=len(changed),
            error=error,
        )
        self.store.finish_sync(sync_id, counts)
        return sync_id

    def _next(self, changed: SessionRecord) -> ChangedSession:
        version = self.versions[changed.session_id] + 1
        self.versions[changed.session_id] = version
        return ChangedSession(changed, version, wants_pull=False)

    def write(
        self,
        session_id: str,
        *,
        at: datetime,
        outcome: str = "ok",
        actor: str = "alice",
    ) -> int:
        """Record an apply through vxcache and its outcome."""
        write_id = self.store.begin_write(
            action="apply", session_id=session_id, force=False, actor=actor, at=at
        )
        self.store.finish_write(
            write_id,
            outcome=outcome,
            http_status=200 if outcome == "ok" else 500,
            detail=None,
            duration_s=1.5,
            stale_since=None,
        )
        return write_id

    def pull(
        self, session_id: str, *, at: datetime, resources: Iterable[tuple[str, str]]
    ) -> int:
        """Record a pull whose Terraform state holds ``(type, name)`` resources."""
        body = f"{session_id} {at}".encode()
        state = StateInput(
            document=b"{}" + body,
            format_version=4,
            terraform_version="1.7.5",
            serial=3,
            lineage="lin-1",
            resources=tuple(
                TerraformResource(
                    address=f"{kind}.{name}",
                    mode="managed",
                    type=kind,
                    name=name,
                    provider="registry.terraform.io/hashicorp/aws",
                    module=None,
                    instance_count=1,
                )
                for kind, name in resources
            ),
        )
        pull = PullInput(
            session_id=session_id,
            pulled_at=at,
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            body=body,
            redacted_values=0,
            artifacts=(ArtifactInput("plan.log", b"log " + body, "log", "text/plain"),),
            state=state,
        )
        return self.store.save_pull(pull, sync_id=None)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def builder(db_path: Path) -> Iterator[CacheBuilder]:
    """An empty, migrated cache written through the real store."""
    builder = CacheBuilder(db_path)
    yield builder
    builder.close()


@pytest.fixture
def offline(db_path: Path) -> Settings:
    """Offline settings for the cache at ``db_path``."""
    return make_settings(None, db_path)


def scalar(settings: Settings, sql: str) -> object:
    """Return the single value a query answers."""
    ((value,),) = run_query(settings, sql).rows
    return value


# -- the public relations ------------------------------------------------------

PROMISED = {
    "sessions": "session_id status hostname username script resource_id started_at "
    "ended_at duration_s first_seen_at last_seen_at presence stale extra",
    "session_history": "session_id version status hostname username script "
    "resource_id started_at ended_at extra valid_from valid_to sync_id observed_via",
    "artifacts": "session_id pull_id name kind size_bytes sha256 pulled_at content_type",
    "terraform_states": "session_id pull_id pulled_at terraform_version serial lineage "
    "resource_count",
    "terraform_resources": "session_id pull_id address mode type name provider module "
    "instance_count",
    "writes": "write_id at action session_id force actor outcome http_status detail",
    "sync_runs": "sync_id trigger started_at finished_at outcome listed new changed "
    "unchanged aged_out gone pulled error",
    "pulls": "pull_id session_id sync_id pulled_at size_bytes sha256",
}


@pytest.mark.parametrize(("relation", "columns"), PROMISED.items(), ids=list(PROMISED))
def test_each_public_relation_has_its_promised_columns(
    builder: CacheBuilder, offline: Settings, relation: str, columns: str
) -> None:
    builder.sync(NOW, new=[record("s1")])

    result = run_query(offline, f"SELECT * FROM {relation} LIMIT 0")

    assert [c for c in result.columns if c in columns.split()] == columns.split()


def test_show_tables_lists_the_public_relations(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])

    result = run_query(offline, "SHOW TABLES")

    assert sorted(row[0] for row in result.rows) == sorted(_schema.PUBLIC_RELATIONS)


def test_timestamps_are_utc_timestamptz(
    builder: CacheBuilder, offline: Settings
) -> None:
    started = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    builder.sync(NOW, new=[record("s1", started_at=started)])

    result = run_query(offline, "SELECT started_at, first_seen_at FROM sessions")

    assert result.types == ["TIMESTAMP WITH TIME ZONE"] * 2
    assert result.rows == [(started, NOW)]
    assert result.rows[0][0].utcoffset() == timedelta(0)


def test_sessions_derive_duration_and_extra(
    builder: CacheBuilder, offline: Settings
) -> None:
    started = NOW - timedelta(minutes=90)
    finished = SessionRecord(
        "s1", "succeeded", started_at=started, ended_at=started + timedelta(seconds=61.5),
        extra={"exit_code": 0},
    )  # fmt: skip
    builder.sync(NOW, new=[finished, record("s2", "running")])

    result = run_query(
        offline,
        "SELECT session_id, duration_s, extra->>'exit_code' FROM sessions ORDER BY 1",
    )

    assert result.rows == [("s1", 61.5, "0"), ("s2", None, None)]


@pytest.mark.parametrize(
    "started",
    [
        datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, tzinfo=timezone(timedelta(hours=-11))),
    ],
    ids=["midnight", "last-microsecond", "before-1970", "leap-day-west"],
)
def test_utc_day_is_the_utc_calendar_day(
    builder: CacheBuilder, offline: Settings, started: datetime
) -> None:
    builder.sync(
        NOW, new=[record("s1", started_at=started), SessionRecord("s2", "queued")]
    )

    result = run_query(
        offline, "SELECT utc_day(started_at) FROM sessions ORDER BY session_id"
    )

    assert result.rows == [(started.astimezone(UTC).date(),), (None,)]


def test_last_seen_of_a_listed_session_is_the_latest_good_listing(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW - timedelta(hours=2), new=[record("s1"), record("s2")])
    builder.sync(NOW - timedelta(hours=1), aged_out=[record("s2")])
    builder.sync(NOW, outcome="partial")
    builder.sync(NOW + timedelta(minutes=5), outcome="failed", error="node down")

    result = run_query(
        offline, "SELECT session_id, presence, last_seen_at FROM sessions ORDER BY 1"
    )

    assert result.rows == [
        ("s1", "listed", NOW),
        ("s2", "aged_out", NOW - timedelta(hours=1)),
    ]


# -- refreshing the replica ----------------------------------------------------


def test_a_new_session_shows_in_the_next_query(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    assert scalar(offline, "SELECT count(*) FROM sessions") == 1

    builder.sync(NOW + timedelta(minutes=5), new=[record("s2"), record("s3")])

    assert scalar(offline, "SELECT count(*) FROM sessions") == 3


def test_a_query_leaves_no_read_open_that_would_hold_a_checkpoint_back(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    scalar(offline, "SELECT count(*) FROM sessions")
    builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])

    with closing(sqlite3.connect(offline.cache.db_path)) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    assert busy == 0
    assert scalar(offline, "SELECT count(*) FROM sessions") == 2


def test_a_status_change_shows_in_sessions_and_as_a_new_version(
    builder: CacheBuilder, offline: Settings
) -> None:
    later = NOW + timedelta(minutes=5)
    builder.sync(NOW, new=[record("s1", "running"), record("s2", "running")])
    run_query(offline, "SELECT 1")

    builder.sync(later, changed=[record("s1", "failed")])

    assert run_query(
        offline, "SELECT session_id, status FROM sessions ORDER BY 1"
    ).rows == [
        ("s1", "failed"),
        ("s2", "running"),
    ]
    history = run_query(
        offline,
        "SELECT session_id, version, status, valid_from, valid_to FROM session_history "
        "ORDER BY 1, 2",
    )
    assert history.rows == [
        ("s1", 1, "running", NOW, later),
        ("s1", 2, "failed", later, None),
        ("s2", 1, "running", NOW, None),
    ]


def test_refresh_copies_only_the_rows_changed_since_the_last_one(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record(f"s{i}", "running") for i in range(10)])
    first = refresh_replica(builder.db_path)

    builder.sync(NOW + timedelta(minutes=5), changed=[record("s3", "succeeded")])
    second = refresh_replica(builder.db_path)

    assert first.is_rebuilt
    assert not second.is_rebuilt
    # the sync run, the session, its closed and its new version
    assert second.rows_copied == 4
    assert second.watermark == builder.store.change_seq()


def test_a_refresh_that_finds_nothing_new_copies_nothing(
    builder: CacheBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder.sync(NOW, new=[record("s1")])
    first = refresh_replica(builder.db_path)
    inode = first.path.stat().st_ino

    def no_duckdb() -> None:
        raise AssertionError("a no-op refresh must not start DuckDB")

    monkeypatch.setattr(_replica, "_writer", no_duckdb)
    monkeypatch.setattr(_replica.shutil, "copyfile", no_duckdb)
    started = time.perf_counter()
    second = refresh_replica(builder.db_path)
    elapsed = time.perf_counter() - started

    assert (second.watermark, second.rows_copied) == (first.watermark, 0)
    assert first.path.stat().st_ino == inode
    assert elapsed < 0.05


def test_the_replica_file_is_private(builder: CacheBuilder) -> None:
    builder.sync(NOW, new=[record("s1")])

    info = refresh_replica(builder.db_path)

    assert info.path == replica_path(builder.db_path)
    assert info.path.stat().st_mode & 0o777 == 0o600


def test_a_missing_replica_is_rebuilt(builder: CacheBuilder, offline: Settings) -> None:
    builder.sync(NOW, new=[record("s1")])
    refresh_replica(builder.db_path).path.unlink()

    info = refresh_replica(builder.db_path)

    assert info.is_rebuilt
    assert scalar(offline, "SELECT count(*) FROM sessions") == 1


def test_a_broken_replica_is_rebuilt(builder: CacheBuilder, offline: Settings) -> None:
    builder.sync(NOW, new=[record("s1")])
    path = refresh_replica(builder.db_path).path
    path.write_bytes(b"not a duckdb file" * 100)

    assert scalar(offline, "SELECT count(*) FROM sessions") == 1


def test_a_replica_of_an_older_format_is_rebuilt(
    builder: CacheBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder.sync(NOW, new=[record("s1")])
    refresh_replica(builder.db_path)

    monkeypatch.setattr(_schema, "REPLICA_FORMAT", _schema.REPLICA_FORMAT + 1)

    assert refresh_replica(builder.db_path).is_rebuilt


def test_a_cache_swapped_for_another_file_is_rebuilt(
    builder: CacheBuilder, offline: Settings, tmp_path: Path
) -> None:
    builder.sync(NOW, new=[record("s1")])
    refresh_replica(builder.db_path)
    other = CacheBuilder(tmp_path / "other.db")
    other.sync(NOW, new=[record("x1"), record("x2")])
    other.close()
    # A SQLite file is replaced only once no one has it open; the store,
    # closing last, leaves everything in the file itself.
    _load.close_kept()
    builder.close()

    os.replace(tmp_path / "other.db", builder.db_path)

    assert scalar(
        offline, "SELECT string_agg(session_id, ',' ORDER BY 1) FROM sessions"
    ) == ("x1,x2")


def test_a_missing_cache_is_a_store_error(tmp_path: Path) -> None:
    settings = make_settings(None, tmp_path / "none.db")

    with pytest.raises(StoreError, match="no cache at"):
        run_query(settings, "SELECT 1")


def test_an_unmigrated_cache_is_a_migration_error(
    db_path: Path, offline: Settings
) -> None:
    Store(db_path).close()

    with pytest.raises(MigrationError, match="no schema yet"):
        run_query(offline, "SELECT 1")


def test_queries_while_another_thread_refreshes_never_fail(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s0")])
    failures: list[BaseException] = []

    def sync_and_refresh() -> None:
        try:
            for i in range(1, 16):
                builder.sync(NOW + timedelta(minutes=i), new=[record(f"s{i}")])
                refresh_replica(builder.db_path)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    writer = threading.Thread(target=sync_and_refresh)
    writer.start()
    counts = []
    while writer.is_alive():
        counts.append(scalar(offline, "SELECT count(*) FROM sessions"))
    writer.join()

    assert failures == []
    assert counts == sorted(counts)
    assert scalar(offline, "SELECT count(*) FROM sessions") == 16


def test_an_instance_whose_replica_was_replaced_while_attaching_is_not_kept(
    builder: CacheBuilder, offline: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder.sync(NOW, new=[record("s1")])
    inode = _instances.inode_of
    refreshed = []

    def refresh_then_stat(path):  # the first stat is the one after ATTACH
        if not refreshed:
            builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])
            refreshed.append(refresh_replica(builder.db_path))
        return inode(path)

    monkeypatch.setattr(_instances, "inode_of", refresh_then_stat)

    counts = [scalar(offline, "SELECT count(*) FROM sessions") for _ in range(2)]

    assert counts == [1, 2]


def test_a_refreshed_replica_is_attached_to_the_running_instance(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    assert scalar(offline, "SELECT count(*) FROM sessions") == 1
    live = _instances._live[live_key(offline)]
    before = open_readonly(offline)  # a cursor on the first file

    builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])
    refresh_replica(builder.db_path)
    after = scalar(offline, "SELECT count(*) FROM sessions")

    assert after == 2
    assert _instances._live[live_key(offline)] is live
    assert live.generation == 2
    assert before.execute("SELECT count(*) FROM sessions").fetchall() == [(1,)]
    before.close()


def test_a_refresh_in_this_process_moves_its_instance_to_the_new_file(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    scalar(offline, "SELECT count(*) FROM sessions")
    live = _instances._live[live_key(offline)]

    builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])
    refresh_replica(builder.db_path)

    assert live.generation == 2  # before any query asked
    assert live.is_current()


def test_a_query_knows_the_last_success_and_the_last_failure(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    builder.sync(NOW + timedelta(minutes=5), outcome="failed", error="node said 502")

    freshness = run_query(offline, "SELECT 1").freshness

    assert freshness.last_success_at == NOW
    assert freshness.last_attempt_at == NOW + timedelta(minutes=5)
    assert freshness.last_attempt_outcome == "failed"
    assert "last sync failed: node said 502" in freshness.describe()


def live_key(settings: Settings) -> tuple[Path, str]:
    return (replica_path(settings.cache.db_path), settings.query.memory_limit)


def test_a_query_during_a_sync_sees_the_last_committed_state(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    run_query(offline, "SELECT 1")

    with builder.store.transaction() as (connection, seq):
        connection.execute(
            text("UPDATE sessions SET status = 'failed', change_seq = :seq"),
            {"seq": seq},
        )
        during = run_query(offline, "SELECT status FROM sessions")

    assert during.rows == [("succeeded",)]
    assert run_query(offline, "SELECT status FROM sessions").rows == [("failed",)]


def test_a_refresh_that_waits_too_long_answers_from_the_last_replica(
    builder: CacheBuilder,
) -> None:
    builder.sync(NOW, new=[record("s1")])
    first = refresh_replica(builder.db_path)
    builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])

    with filelock.FileLock(f"{first.path}.lock"):
        stale = refresh_replica(builder.db_path, lock_timeout_seconds=0.2)

    assert stale.watermark == first.watermark
    assert refresh_replica(builder.db_path).watermark == builder.store.change_seq()


def test_a_first_build_blocked_too_long_is_a_busy_error(builder: CacheBuilder) -> None:
    builder.sync(NOW, new=[record("s1")])

    with (
        filelock.FileLock(f"{replica_path(builder.db_path)}.lock"),
        pytest.raises(CacheBusyError, match=r"locked for 0\.2s"),
    ):
        refresh_replica(builder.db_path, lock_timeout_seconds=0.2)


_READER = """
import sys
from vxcache.config import load_settings
from vxcache.query import open_readonly
settings = load_settings(overrides={"cache": {"path": sys.argv[1]}}, environ={}, offline=True)
connection = open_readonly(settings)
print("ready", flush=True)
sys.stdin.readline()
print(connection.execute("SELECT count(*) FROM sessions").fetchall()[0][0], flush=True)
"""


def test_a_reader_process_keeps_its_replica_while_another_refreshes(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])
    command = [sys.executable, "-c", _READER, str(builder.db_path)]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as reader:
        assert reader.stdout is not None
        assert reader.stdin is not None
        assert reader.stdout.readline().strip() == "ready"

        builder.sync(NOW + timedelta(minutes=5), new=[record("s2")])
        refreshed = refresh_replica(builder.db_path)
        reader.stdin.write("go\n")
        reader.stdin.flush()
        old_count = reader.stdout.readline().strip()
        returncode = reader.wait(timeout=30)

    assert returncode == 0
    assert refreshed.watermark == builder.store.change_seq()
    assert old_count == "1"
    assert scalar(offline, "SELECT count(*) FROM sessions") == 2


def test_a_copied_cache_in_a_read_only_folder_can_be_queried(
    builder: CacheBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder.sync(NOW, new=[record("s1"), record("s2")])
    builder.close()
    folder = tmp_path / "readonly"
    folder.mkdir()
    shutil.copy(builder.db_path, folder / "cache.db")
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway; pretend it cannot
        monkeypatch.setattr(_files, "is_writable", lambda path: path != folder)
    settings = make_settings(None, folder / "cache.db")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setattr(_files, "_private_folders", {})

    try:
        result = run_query(settings, "SELECT count(*) FROM sessions")
        monkeypatch.setattr(_files, "_private_folders", {})  # as a new process would
        info = refresh_replica(folder / "cache.db")
    finally:
        folder.chmod(0o755)

    assert result.rows == [(2,)]
    assert info.is_private
    assert info.path.parent == tmp_path / "user-cache" / "vxcache" / "replicas"
    assert stat.S_IMODE(info.path.parent.stat().st_mode) == 0o700
    assert not info.is_rebuilt  # built once, by the first query
    assert not any(path.name.endswith(".duckdb") for path in folder.iterdir())


# -- the sandbox ---------------------------------------------------------------

ESCAPES = {
    "read_csv": ("SELECT * FROM read_csv('/etc/passwd')", "outside the cache"),
    "read_csv_auto": (
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "outside the cache",
    ),
    "read_text": ("SELECT * FROM read_text('/etc/passwd')", "outside the cache"),
    "read_blob": ("SELECT * FROM read_blob('/etc/passwd')", "outside the cache"),
    "read_json": ("SELECT * FROM read_json('/etc/passwd')", "outside the cache"),
    "read_parquet": ("SELECT * FROM read_parquet('/etc/passwd')", "outside the cache"),
    "parquet_metadata": (
        "SELECT * FROM parquet_metadata('/etc/x')",
        "outside the cache",
    ),
    "sniff_csv": ("SELECT * FROM sniff_csv('/etc/passwd')", "outside the cache"),
    "glob": ("SELECT * FROM glob('/etc/*')", "outside the cache"),
    "replacement scan": ("FROM '/etc/passwd'", "does not exist"),
    "the cache file": ("SELECT * FROM read_blob('{db}')", "outside the cache"),
    "the replica's sidecar": (
        "SELECT * FROM read_blob('{db}.duckdb.json')",
        "outside the cache",
    ),
    "files beside the replica": ("SELECT * FROM glob('{db}*')", "outside the cache"),
    "http": ("SELECT * FROM read_csv('https://example.com/x.csv')", "query"),
    "getenv": ("SELECT getenv('HOME')", "query failed"),
    "copy out": ("COPY sessions TO '{tmp}/out.csv'", "COPY statements are refused"),
    "copy query": ("COPY (SELECT 1) TO '{tmp}/out.csv'", "COPY statements are refused"),
    "copy in": ("COPY sessions FROM '/etc/passwd'", "COPY statements are refused"),
    "attach": ("ATTACH '{tmp}/x.db' AS x", "ATTACH statements are refused"),
    "detach": ("DETACH replica", "DETACH statements are refused"),
    "install": ("INSTALL httpfs", "INSTALL statements are refused"),
    "load": ("LOAD httpfs", "LOAD statements are refused"),
    "set": ("SET enable_external_access = true", "SET statements are refused"),
    "set lock": ("SET lock_configuration = false", "SET statements are refused"),
    "reset": ("RESET enable_external_access", "RESET statements are refused"),
    "set variable": ("SET VARIABLE x = 1", "SET statements are refused"),
    "use": ("USE memory", "USE statements are refused"),
    "pragma": ("PRAGMA enable_profiling", "PRAGMA statements are refused"),
    "export": ("EXPORT DATABASE '{tmp}/dump'", "EXPORT statements are refused"),
    "import": ("IMPORT DATABASE '{tmp}/dump'", "IMPORT statements are refused"),
    "create": ("CREATE TABLE t (a INTEGER)", "CREATE statements are refused"),
    "create macro": ("CREATE MACRO m() AS 1", "CREATE statements are refused"),
    "create secret": (
        "CREATE SECRET (TYPE s3, KEY_ID 'k')",
        "CREATE statements are refused",
    ),
    "insert": ("INSERT INTO cache.sessions SELECT * FROM cache.sessions", "INSERT"),
    "update": (
        "UPDATE cache.sessions SET status = 'x'",
        "UPDATE statements are refused",
    ),
    "delete": ("DELETE FROM cache.sessions", "DELETE statements are refused"),
    "drop": ("DROP VIEW sessions", "DROP statements are refused"),
    "alter": ("ALTER VIEW sessions RENAME TO s", "ALTER statements are refused"),
    "call": ("CALL pragma_version()", "CALL statements are refused"),
    "checkpoint": ("CHECKPOINT", "CHECKPOINT statements are refused"),
    "vacuum": ("VACUUM", "VACUUM statements are refused"),
    "begin": ("BEGIN TRANSACTION", "BEGIN statements are refused"),
    "prepare": ("PREPARE p AS SELECT 1", "PREPARE statements are refused"),
    "update extensions": ("UPDATE EXTENSIONS", "refused|does not run"),
    "write in with": (
        "WITH gone AS (DELETE FROM cache.sessions RETURNING *) SELECT * FROM gone",
        "read-only",
    ),
    "two statements": ("SELECT 1; SELECT 2", "2 statements"),
    "hidden after a comment": (
        "SELECT 1; -- nothing here\nDROP VIEW sessions",
        "2 statements",
    ),
    "hidden in a block comment line": (
        "SELECT 1 /* ; */; COPY sessions TO '{tmp}/out.csv'",
        "2 statements",
    ),
    "comment before": ("-- read only\nCOPY sessions TO '{tmp}/out.csv'", "COPY"),
    "explain copy": ("EXPLAIN COPY sessions TO '{tmp}/out.csv'", "COPY"),
    "explain analyze copy": (
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/out.csv'",
        "COPY",
    ),
    "explain analyze insert": (
        "EXPLAIN ANALYZE INSERT INTO cache.sessions SELECT * FROM cache.sessions",
        "INSERT",
    ),
    "explain analyze with comment": (
        "EXPLAIN /* x */ ANALYZE COPY (SELECT 1) TO '{tmp}/out.csv'",
        "refused",
    ),
    "explain analyze a file read": (
        "EXPLAIN ANALYZE SELECT * FROM read_text('/etc/passwd')",
        "outside the cache",
    ),
    "empty": ("  -- nothing\n", "empty"),
    "not sql": ("SELEC 1", "not valid SQL"),
}


@pytest.mark.parametrize(("sql", "match"), ESCAPES.values(), ids=list(ESCAPES))
def test_the_sandbox_refuses(
    builder: CacheBuilder, offline: Settings, tmp_path: Path, sql: str, match: str
) -> None:
    builder.sync(NOW, new=[record("s1")])
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    with pytest.raises(QueryError, match=match):
        run_query(offline, sql.format(tmp=scratch, db=builder.db_path))

    assert list(scratch.iterdir()) == []
    assert scalar(offline, "SELECT count(*) FROM sessions") == 1


def test_the_sandbox_shows_no_secrets_and_keeps_its_settings(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])

    secrets = run_query(offline, "SELECT * FROM duckdb_secrets()")
    settings = run_query(
        offline,
        "SELECT name, value FROM duckdb_settings() WHERE name IN ("
        "'enable_external_access', 'lock_configuration', 'autoload_known_extensions', "
        "'autoinstall_known_extensions', 'allow_community_extensions') ORDER BY name",
    )

    assert secrets.rows == []
    assert settings.rows == [
        ("allow_community_extensions", "false"),
        ("autoinstall_known_extensions", "false"),
        ("autoload_known_extensions", "false"),
        ("enable_external_access", "false"),
        ("lock_configuration", "true"),
    ]


READING = {
    "select": "SELECT 1",
    "with": "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
    "values": "VALUES (1), (2)",
    "from first": "FROM sessions SELECT session_id",
    "describe": "DESCRIBE sessions",
    "show": "SHOW sessions",
    "summarize": "SUMMARIZE sessions",
    "explain": "EXPLAIN SELECT * FROM sessions",
    "explain analyze": "EXPLAIN ANALYZE SELECT count(*) FROM sessions",
    "pivot": "PIVOT sessions ON status USING count(*) GROUP BY hostname",
    "unpivot": "UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v",
    "comment first": "-- how many\nSELECT count(*) FROM sessions;",
    "macro": "SELECT count(*) FROM sessions_as_of(now())",
}


@pytest.mark.parametrize("sql", READING.values(), ids=list(READING))
def test_reading_statements_run(
    builder: CacheBuilder, offline: Settings, sql: str
) -> None:
    builder.sync(NOW, new=[record("s1")])

    result = run_query(offline, sql)

    assert result.columns


def test_a_runaway_query_stops_at_the_time_limit(
    builder: CacheBuilder, db_path: Path
) -> None:
    builder.sync(NOW, new=[record("s1")])
    settings = make_settings(None, db_path, query={"time_limit": 0.5})
    started = time.perf_counter()

    with pytest.raises(
        QueryError, match=r"ran past the time limit of 0\.5s \(query\.time_limit\)"
    ):
        run_query(
            settings, "SELECT count(*) FROM range(100000000) a, range(100000000) b"
        )

    assert time.perf_counter() - started < 5


def test_the_watchdog_runs_only_what_outlives_its_deadline() -> None:
    fired: list[str] = []

    with _watchdog.deadline(30, lambda: fired.append("long")):
        with _watchdog.deadline(0.05, lambda: fired.append("short")):
            waited_until = time.monotonic() + 5
            while not fired and time.monotonic() < waited_until:
                time.sleep(0.01)
        with _watchdog.deadline(0.05, lambda: fired.append("left in time")):
            pass
    time.sleep(0.2)
    for _ in range(50):
        with _watchdog.deadline(30, lambda: fired.append("quick")):
            pass

    assert fired == ["short"]
    names = [thread.name for thread in threading.enumerate()]
    assert names.count("vx-query-watchdog") == 1


def test_the_row_cap_truncates_and_none_lifts_it(
    builder: CacheBuilder, db_path: Path
) -> None:
    builder.sync(NOW, new=[record("s1")])
    settings = make_settings(None, db_path, query={"row_cap": 10})

    capped = run_query(settings, "SELECT * FROM range(25)")
    exact = run_query(settings, "SELECT * FROM range(10)")
    everything = run_query(settings, "SELECT * FROM range(25)", row_cap=None)

    assert (len(capped.rows), capped.truncated) == (10, True)
    assert (len(exact.rows), exact.truncated) == (10, False)
    assert (len(everything.rows), everything.truncated) == (25, False)


def test_string_parameters_compare_with_timestamps(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[
        record("old", started_at=datetime(2026, 1, 1, tzinfo=UTC)),
        record("new", started_at=datetime(2026, 2, 1, tzinfo=UTC)),
    ])  # fmt: skip

    implicit = run_query(
        offline, "SELECT session_id FROM sessions WHERE started_at >= $since",
        params={"since": "2026-01-15"},
    )  # fmt: skip
    explicit = run_query(
        offline, "SELECT count(*) FROM sessions WHERE started_at < $until::TIMESTAMPTZ",
        params={"until": "2026-01-15T00:00:00Z"},
    )  # fmt: skip

    assert implicit.rows == [("new",)]
    assert explicit.rows == [(1,)]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, r"uses \$since but no value"),
        ({"since": "2026-01-01", "x": "1"}, "'x' is not used"),
    ],
    ids=["missing", "unused"],
)
def test_parameters_must_match_the_query(
    builder: CacheBuilder, offline: Settings, params: dict[str, str], match: str
) -> None:
    builder.sync(NOW, new=[record("s1")])

    with pytest.raises(QueryError, match=match):
        run_query(
            offline,
            "SELECT count(*) FROM sessions WHERE started_at > $since",
            params=params,
        )


def test_a_failing_query_is_one_line(builder: CacheBuilder, offline: Settings) -> None:
    builder.sync(NOW, new=[record("s1")])

    with pytest.raises(QueryError) as caught:
        run_query(offline, "SELECT no_such_column FROM sessions")

    assert "no_such_column" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_result_says_which_change_it_reflects(
    builder: CacheBuilder, offline: Settings
) -> None:
    builder.sync(NOW, new=[record("s1")])

    result = run_query(offline, "SELECT 1")

    assert result.as_of_seq == builder.store.change_seq()


# -- sessions_as_of ------------------------------------------------------------


def test_sessions_as_of_replays_what_the_cache_knew(
    builder: CacheBuilder, offline: Settings
) -> None:
    t0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    builder.sync(t0, new=[record("a", "running"), record("b", "running")])
    builder.sync(t0 + timedelta(hours=1), new=[record("c", "queued")],
               changed=[record("a", "succeeded")])  # fmt: skip
    builder.sync(t0 + timedelta(hours=2), changed=[record("b", "failed")])
    builder.sync(t0 + timedelta(hours=3), gone=["b"])
    sql = (
        "SELECT session_id, version, status, current_presence "
        "FROM sessions_as_of($at) ORDER BY session_id"
    )

    def as_of(at: datetime) -> list[tuple[object, ...]]:
        return run_query(offline, sql, params={"at": at.isoformat()}).rows

    assert as_of(t0 - timedelta(seconds=1)) == []
    assert as_of(t0) == [("a", 1, "running", "listed"), ("b", 1, "running", "gone")]
    assert as_of(t0 + timedelta(minutes=90)) == [
        ("a", 2, "succeeded", "listed"),
        ("b", 1, "running", "gone"),
        ("c", 1, "queued", "listed"),
    ]
    assert as_of(t0 + timedelta(hours=5)) == [
        ("a", 2, "succeeded", "listed"),
        ("b", 2, "failed", "gone"),
        ("c", 1, "queued", "listed"),
    ]


# -- snapshot export -----------------------------------------------------------


def test_export_writes_every_relation_and_a_manifest(
    builder: CacheBuilder, offline: Settings, tmp_path: Path
) -> None:
    builder.sync(NOW, new=[record("s1"), record("s2", "running")])
    builder.sync(NOW + timedelta(minutes=1), changed=[record("s2", "failed")])
    builder.pull(
        "s1", at=NOW, resources=[("aws_instance", "web"), ("aws_s3_bucket", "logs")]
    )
    builder.write("s1", at=NOW)
    target = tmp_path / "snapshot"

    manifest = export_snapshot(offline, target)

    assert sorted(p.name for p in target.iterdir()) == sorted(
        [f"{name}.parquet" for name in _schema.PUBLIC_RELATIONS] + ["manifest.json"]
    )
    expected = {
        "sessions": 2, "session_history": 3, "artifacts": 1, "pulls": 1,
        "terraform_states": 1, "terraform_resources": 2, "writes": 1, "sync_runs": 2,
    }  # fmt: skip
    assert manifest.row_counts == expected
    stored = orjson.loads((target / "manifest.json").read_bytes())
    assert stored["row_counts"] == expected
    assert stored["change_seq"] == builder.store.change_seq()
    assert stored["schema_revision"] == SCHEMA_REVISION
    assert stored["as_of"].endswith("Z")
    assert stored["synced_at"] == format_timestamp(NOW + timedelta(minutes=1))
    assert manifest.freshness.last_success_at == NOW + timedelta(minutes=1)
    history = pq.read_table(target / "session_history.parquet")
    assert history.num_rows == 3
    assert str(history.schema.field("valid_from").type) == "timestamp[us, tz=UTC]"


def test_export_as_csv(
    builder: CacheBuilder, offline: Settings, tmp_path: Path
) -> None:
    builder.sync(NOW, new=[record("s1")])

    manifest = export_snapshot(offline, tmp_path / "csv", fmt="csv")

    header = (tmp_path / "csv" / "sessions.csv").read_text().splitlines()[0]
    assert manifest.files["sessions"] == "sessions.csv"
    assert header.startswith("session_id,status,hostname")


def test_export_refuses_an_unknown_format(offline: Settings, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown export format 'xlsx'"):
        export_snapshot(offline, tmp_path, fmt="xlsx")
