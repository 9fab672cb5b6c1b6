"""
The DuckDB replica of the cache, and how it is kept current.

DuckDB lets one process write a file or many read it, never both, and queries
must neither fail on a lock nor hold up a sync. So a refresh never writes the
replica readers use: under a file lock it copies the replica, applies the rows
changed since the replica's watermark to the copy, and renames the copy over
the replica. Readers keep the file they opened. A small JSON sidecar repeats
the replica's watermark, so finding nothing new costs a stat and one SQLite
read, and no DuckDB at all (see ``_files``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Final

import duckdb

from vxcache.errors import MigrationError, StoreError
from vxcache.query import _files, _instances, _schema
from vxcache.query._files import ReplicaInfo
from vxcache.query._load import (
    CacheHeader,
    apply_chunk,
    iter_changed,
    read_current_header,
    read_header,
    read_snapshot,
)

logger = logging.getLogger(__name__)

_LOCK_TIMEOUT_SECONDS: Final = 300.0
_writer_lock = threading.Lock()
_writer_instance: duckdb.DuckDBPyConnection | None = None
_META: Final = f"{_schema.BASE_SCHEMA}.replica_meta"


def refresh_replica(
    db_path: Path, *, lock_timeout_seconds: float = _LOCK_TIMEOUT_SECONDS
) -> ReplicaInfo:
    """
    Bring the DuckDB replica of a cache up to date and describe it.

    Copies only rows changed since the replica's watermark; rebuilds when the
    replica is missing, was built by another vxcache or from another cache
    file. A cache in a folder we cannot write gets a replica private to this
    process. Called before every query and by the CLI right after a sync.

    Raises:
        StoreError: the cache is missing or unreadable, or the replica
            cannot be written.
        MigrationError: the cache's schema is not the one this vxcache reads.
        CacheBusyError: another process held the replica lock too long and
            there is no earlier replica to fall back on.
    """
    if not db_path.is_file():
        raise StoreError(f"there is no cache at {db_path}; run `vxcache sync` first")
    path, is_private = _files.locate(db_path)

    header = read_current_header(db_path)
    known = _files.read_sidecar(path)
    if known is not None and _files.is_current(known, header):
        return known.info(path, is_private=is_private)
    _checked(header, db_path)

    fallback = (
        known if known is not None and _files.is_same_cache(known, header) else None
    )
    with (
        _files.path_lock(path),
        _files.file_lock(path, lock_timeout_seconds, fallback=fallback) as stale,
    ):
        if stale is not None:
            return stale.info(path, is_private=is_private)
        info = _refresh_locked(db_path, path)
    _instances.follow(path)

    return replace(info, is_private=is_private)


# -- building a new replica file -----------------------------------------------


def _refresh_locked(db_path: Path, path: Path) -> ReplicaInfo:
    _files.discard_scratch(path)
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    started = time.perf_counter()
    try:
        with read_snapshot(db_path) as snapshot:
            header = _checked(read_header(snapshot, db_path), db_path)
            known = _files.read_sidecar(path)
            if known is not None and _files.is_current(known, header):
                return known.info(path, is_private=False)  # refreshed while we waited
            info = _fill_scratch(snapshot, header, path=path, scratch=scratch)
        os.replace(scratch, path)
        _files.write_sidecar(path, info)
    except duckdb.Error as exc:
        _discard_writer()  # a fatal error leaves the instance unusable
        raise StoreError(f"building the query replica {path} failed: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"writing the query replica {path} failed: {exc}") from exc
    finally:
        _files.discard_scratch(path)
    logger.info(
        "query replica refreshed watermark=%d rows=%d rebuilt=%s seconds=%.3f",
        info.watermark, info.rows_copied, info.is_rebuilt, time.perf_counter() - started,
    )  # fmt: skip

    return info


def _fill_scratch(
    snapshot: sqlite3.Connection, header: CacheHeader, *, path: Path, scratch: Path
) -> ReplicaInfo:
    """Write the next replica to ``scratch``: a copy of the current one, updated."""
    cursor = _writer().cursor()
    alias = f"scratch_{uuid.uuid4().hex[:16]}"
    try:
        since = (
            _attach_copy(cursor, path, scratch, alias, header)
            if path.exists()
            else None
        )
        if since is None:
            _attach_new(cursor, scratch, alias)
        is_new = since is None
        copied = 0
        # One transaction: big inserts go straight to the file, not the WAL.
        cursor.execute("BEGIN TRANSACTION")
        for spec in _schema.table_specs():
            for chunk in iter_changed(snapshot, spec, since=since):
                apply_chunk(cursor, spec, chunk, is_new=is_new)
                copied += chunk.num_rows
        cursor.execute(f"DELETE FROM {_META}")
        cursor.execute(
            _schema.META_INSERT,
            [_schema.REPLICA_FORMAT, header.revision, header.cache_id, header.seq],
        )
        cursor.execute("COMMIT")
        cursor.execute(f"CHECKPOINT {alias}")
    finally:
        _detach(cursor, alias)
        cursor.close()

    return ReplicaInfo(
        path,
        header.seq,
        str(header.revision),
        header.cache_id,
        rows_copied=copied,
        is_rebuilt=is_new,
    )


def _attach_copy(
    cursor: duckdb.DuckDBPyConnection,
    path: Path,
    scratch: Path,
    alias: str,
    header: CacheHeader,
) -> int | None:
    """Attach a copy of the replica; return its watermark, or None if it cannot be reused."""
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    shutil.copyfile(path, scratch)  # into the 0600 file; sendfile on Linux
    try:
        cursor.execute(f"ATTACH {_schema.quote_literal(str(scratch))} AS {alias}")
        cursor.execute(f"USE {alias}")
        rows = cursor.execute(
            f"SELECT format, revision, cache_id, watermark FROM {_META}"
        ).fetchall()
    except duckdb.Error as exc:
        logger.warning(
            "query replica unreadable, rebuilding path=%s error=%s", path, exc
        )
        rows = []
    built_for = (_schema.REPLICA_FORMAT, header.revision, header.cache_id)
    if len(rows) == 1 and rows[0][:3] == built_for and rows[0][3] <= header.seq:
        return int(rows[0][3])
    _detach(cursor, alias)
    scratch.unlink()

    return None


def _detach(cursor: duckdb.DuckDBPyConnection, alias: str) -> None:
    for statement in ("ROLLBACK", "USE memory", f"DETACH DATABASE IF EXISTS {alias}"):
        with contextlib.suppress(duckdb.Error):  # no transaction to roll back, say
            cursor.execute(statement)


def _attach_new(cursor: duckdb.DuckDBPyConnection, scratch: Path, alias: str) -> None:
    cursor.execute(f"ATTACH {_schema.quote_literal(str(scratch))} AS {alias}")
    scratch.chmod(0o600)
    cursor.execute(f"USE {alias}")
    cursor.execute(f"CREATE SCHEMA {_schema.BASE_SCHEMA}")
    cursor.execute(_schema.META_DDL)
    for spec in _schema.table_specs():
        for statement in _schema.base_table_ddl(spec):
            cursor.execute(statement)
    for statement in _schema.PUBLIC_DDL:
        cursor.execute(statement)


def _writer() -> duckdb.DuckDBPyConnection:
    """Return this process's DuckDB instance for building replicas, made once."""
    global _writer_instance
    with _writer_lock:
        if _writer_instance is None:
            # The replica can always be rebuilt from the cache, so its writes
            # skip fsync, which would flush the whole copied file every time.
            instance = duckdb.connect(
                ":memory:",
                config={
                    "fsync_mode": "NONE",
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
            instance.execute("SET GLOBAL TimeZone = 'UTC'")
            _writer_instance = instance
        return _writer_instance


def _discard_writer() -> None:
    global _writer_instance
    with _writer_lock:
        _writer_instance = None


def _checked(header: CacheHeader, db_path: Path) -> CacheHeader:
    # Imported here: the store loads SQLAlchemy, which a query on a current
    # replica never needs.
    from vxcache.store import SCHEMA_REVISION

    if header.revision is None:
        raise MigrationError(
            f"the cache {db_path} has no schema yet; run `vxcache sync` or `vxcache db upgrade`"
        )
    if header.revision > SCHEMA_REVISION:
        raise MigrationError(
            f"cache schema is at {header.revision}, newer than this vxcache "
            f"({SCHEMA_REVISION}); upgrade vxcache"
        )
    if header.revision != SCHEMA_REVISION:
        raise MigrationError(
            f"cache schema is at {header.revision}, vxcache expects {SCHEMA_REVISION}; "
            "run `vxcache db upgrade`"
        )
    return header
