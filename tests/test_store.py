"""The SQLite store: a private file, WAL with a busy timeout, numbered transactions."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import make_settings
from sqlalchemy import text

from vxcache._time import utc_now
from vxcache.config import Settings
from vxcache.errors import CacheBusyError
from vxcache.store import Store, SyncCounts


@pytest.fixture
def offline_settings(db_path: Path) -> Settings:
    """Settings for a cache at ``db_path`` with no node."""
    return make_settings(None, db_path, cache={"busy_timeout": "0.2s"})


@pytest.fixture
def store(offline_settings: Settings) -> Iterator[Store]:
    """A migrated, empty store."""
    with Store.open(offline_settings) as opened:
        yield opened


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cache_file_is_readable_by_its_owner_only(store: Store) -> None:
    mode = mode_of(store.db_path)

    assert mode == 0o600


def test_cache_folder_is_open_to_its_owner_only(store: Store) -> None:
    mode = mode_of(store.db_path.parent)

    assert mode == 0o700


def test_cache_file_is_private_under_a_permissive_umask(
    offline_settings: Settings,
) -> None:
    previous = os.umask(0)
    try:
        Store.open(offline_settings).close()
    finally:
        os.umask(previous)

    modes = (
        mode_of(offline_settings.cache.db_path.parent),
        mode_of(offline_settings.cache.db_path),
    )

    assert modes == (0o700, 0o600)


def test_write_ahead_log_is_as_private_as_the_cache(store: Store) -> None:
    with store.engine.connect() as connection:
        connection.execute(text("SELECT seq FROM _vxcache_changes")).all()
        modes = {
            suffix: mode_of(store.db_path.with_name(store.db_path.name + suffix))
            for suffix in ("-wal", "-shm")
        }

    assert modes == {"-wal": 0o600, "-shm": 0o600}


def test_cache_is_in_wal_mode(store: Store) -> None:
    with store.engine.connect() as connection:
        mode = connection.execute(text("PRAGMA journal_mode")).scalar()

    assert mode == "wal"


def test_connections_wait_for_the_busy_timeout(store: Store) -> None:
    with store.engine.connect() as connection:
        timeout_ms = connection.execute(text("PRAGMA busy_timeout")).scalar()

    assert timeout_ms == 200


def test_open_store_is_at_change_zero(store: Store) -> None:
    seq = store.change_seq()

    assert seq == 0


def test_each_write_transaction_bumps_the_change_counter(store: Store) -> None:
    store.begin_sync(trigger="test", started_at=utc_now())
    store.begin_sync(trigger="test", started_at=utc_now())

    seq = store.change_seq()

    assert seq == 2


def test_begin_sync_closes_runs_a_crash_left_open(store: Store) -> None:
    crashed = store.begin_sync(trigger="test", started_at=utc_now())

    store.begin_sync(trigger="test", started_at=utc_now())

    run = store.sync_run(crashed)
    assert run is not None
    assert (run.outcome, run.error) == ("failed", "interrupted before it finished")


def test_finish_sync_records_outcome_and_counts(store: Store) -> None:
    sync_id = store.begin_sync(trigger="test", started_at=utc_now())

    store.finish_sync(sync_id, SyncCounts(outcome="ok", listed=3, new=2, unchanged=1))

    run = store.sync_run(sync_id)
    assert run is not None
    assert (run.outcome, run.listed, run.new, run.unchanged) == ("ok", 3, 2, 1)


def test_write_blocked_past_the_busy_timeout_raises_cache_busy(store: Store) -> None:
    with closing(sqlite3.connect(store.db_path, timeout=0)) as other:
        other.execute("BEGIN IMMEDIATE")

        with pytest.raises(CacheBusyError, match="stayed locked by another writer"):
            store.begin_sync(trigger="test", started_at=utc_now())

        other.rollback()


def test_failed_write_leaves_the_change_counter(store: Store) -> None:
    with closing(sqlite3.connect(store.db_path, timeout=0)) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(CacheBusyError):
            store.begin_sync(trigger="test", started_at=utc_now())
        other.rollback()

    seq = store.change_seq()

    assert seq == 0
