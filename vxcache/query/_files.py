"""
The replica's files: where it lives, its lock, and its sidecar.

Beside a cache ``X/cache.db`` live ``cache.db.duckdb`` (the replica),
``cache.db.duckdb.lock`` (held while a refresh writes the next replica) and
``cache.db.duckdb.json`` (the sidecar: the replica's identity and watermark,
so finding nothing new needs no DuckDB). A cache in a folder we cannot write
gets its replica in the user's cache folder (``~/.cache/vxcache/replicas`` on
Linux), or, failing that, in a temporary folder private to the process.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import orjson
import platformdirs

from vxcache.config import APP_NAME
from vxcache.errors import CacheBusyError
from vxcache.query import _schema
from vxcache.query._load import CacheHeader

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_path_locks: dict[Path, threading.Lock] = {}
_private_folders: dict[Path, Path] = {}


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """Where a replica is and which state of the cache it holds."""

    path: Path
    watermark: int
    revision: str
    cache_id: str
    rows_copied: int = 0
    is_rebuilt: bool = False
    is_private: bool = False  # kept away from a cache whose folder is read-only


def replica_path(db_path: Path) -> Path:
    """Return where the replica of a cache lives when its folder is writable."""
    return db_path.with_name(db_path.name + ".duckdb")


def is_writable(folder: Path) -> bool:
    """Say whether this process may create files in ``folder``."""
    return os.access(folder, os.W_OK | os.X_OK)


def locate(db_path: Path) -> tuple[Path, bool]:
    """Return the replica's path, and whether it lives away from the cache."""
    if is_writable(db_path.parent):
        return replica_path(db_path), False
    # A cache in a folder we cannot write (a copy on a read-only share, say)
    # keeps its replica in this user's cache folder, named after the cache's
    # path, so only the first query builds it. The replica's identity check
    # catches another file copied to the same path later. A private file, not
    # an in-memory database: DuckDB runs an INSERT inside WITH as a SELECT, so
    # the sandbox relies on the replica being attached read-only.
    key = db_path.resolve()
    digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
    with _lock:
        folder = _private_folders.get(key)
        if folder is None:
            folder = _user_replica_folder() or _temporary_folder()
            _private_folders[key] = folder
    return folder / f"{digest}-{replica_path(db_path).name}", True


def _user_replica_folder() -> Path | None:
    folder = Path(platformdirs.user_cache_dir(APP_NAME)) / "replicas"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError as exc:
        logger.info("no replica folder in the user cache folder: %s", exc)
        return None
    return folder if is_writable(folder) else None


def _temporary_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="vxcache-replica-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextlib.contextmanager
def path_lock(path: Path) -> Iterator[None]:
    """Hold this process's lock on one replica; the file lock works per process."""
    with _lock:
        lock = _path_locks.setdefault(path, threading.Lock())
    with lock:
        yield


@contextlib.contextmanager
def file_lock(
    path: Path, timeout_seconds: float, *, fallback: Sidecar | None
) -> Iterator[Sidecar | None]:
    """Hold the replica lock; yield a stale replica instead if waiting timed out."""
    lock = filelock.FileLock(f"{path}.lock", timeout=timeout_seconds, mode=0o600)
    try:
        lock.acquire()
    except filelock.Timeout:
        if fallback is None:
            raise CacheBusyError(
                f"another process kept the query replica {path} locked for "
                f"{timeout_seconds:g}s; try again"
            ) from None
        logger.warning(
            "replica lock timed out, answering from watermark=%d", fallback.watermark
        )
        yield fallback
        return
    try:
        yield None
    finally:
        lock.release()


# -- the sidecar: a cheap copy of the replica's identity -----------------------


@dataclass(frozen=True, slots=True)
class Sidecar:
    """The identity of a replica file, as its sidecar records it."""

    format: int
    revision: str
    cache_id: str
    watermark: int
    inode: int

    def info(self, path: Path, *, is_private: bool) -> ReplicaInfo:
        """Return the replica's description."""
        return ReplicaInfo(
            path, self.watermark, self.revision, self.cache_id, is_private=is_private
        )


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> Sidecar | None:
    """Return the sidecar of the replica file at ``path``, or None if it does not match."""
    try:
        known = Sidecar(**orjson.loads(_sidecar_path(path).read_bytes()))
        if path.stat().st_ino != known.inode:
            return None
    except (OSError, ValueError, TypeError):
        return None
    return known


def write_sidecar(path: Path, info: ReplicaInfo) -> None:
    """Record the identity of the replica file now at ``path``."""
    data = {
        "format": _schema.REPLICA_FORMAT,
        "revision": info.revision,
        "cache_id": info.cache_id,
        "watermark": info.watermark,
        "inode": path.stat().st_ino,
    }
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.json")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(data))
    os.replace(scratch, _sidecar_path(path))


def is_same_cache(known: Sidecar, header: CacheHeader) -> bool:
    """Say whether a replica was built from this cache, at most as far as it has gone."""
    return (
        known.format == _schema.REPLICA_FORMAT
        and known.revision == header.revision
        and known.cache_id == header.cache_id
        and known.watermark <= header.seq
    )


def is_current(known: Sidecar, header: CacheHeader) -> bool:
    """Say whether a replica holds exactly the cache's latest committed state."""
    return is_same_cache(known, header) and known.watermark == header.seq


def forget_replica(path: Path) -> None:
    """Make the next refresh check the replica file itself, rebuilding it if broken."""
    with contextlib.suppress(FileNotFoundError):
        _sidecar_path(path).unlink()


def discard_scratch(path: Path) -> None:
    """Remove what a refresh that crashed or failed left beside the replica."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
