"""
DuckDB instances reading replica files, kept warm across refreshes.

Starting DuckDB costs tens of milliseconds and a new instance starts with
empty buffers, while attaching a file to a running instance costs about two.
So a process keeps one instance per replica path. When a refresh has renamed
a new replica over the path, the next query attaches the new file beside the
old one under the next generation's alias and switches to it; the generation
before the old one is detached then, in the background. A query still running on the old file
keeps it (DuckDB holds the file until its last reader lets go), and a cursor
handed out just before the switch still finds its generation attached.

A sandboxed instance loses file access for good once it is set up, except
for the replica's own path, which it must be able to attach again. Reading
that file's bytes from SQL shows nothing a query could not select anyway.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb

from vxcache.errors import StoreError
from vxcache.query._schema import quote_literal

logger = logging.getLogger(__name__)

_MAX_INSTANCES: Final = 4
_lock = threading.Lock()
_live: dict[tuple[Path, str], _Live] = {}
_detaching: list[threading.Thread] = []


@dataclass(slots=True)
class _Live:
    """A running instance, the generation of the replica it reads, and that file."""

    instance: duckdb.DuckDBPyConnection
    replica: Path
    generation: int
    inode: int | None  # None: the file was replaced while it was attached

    @property
    def alias(self) -> str:
        return alias_of(self.generation)

    def is_current(self) -> bool:
        # A live instance holds its file open, so no later replica can take
        # its inode number: the same number at the path means the same file.
        return self.inode is not None and self.inode == inode_of(self.replica)

    def advance(self) -> None:
        """Attach the file now at the path as the next generation and switch to it."""
        generation = self.generation + 1
        inode = attach(self.instance, self.replica, alias_of(generation))
        self.instance.execute(f"USE {alias_of(generation)}")
        self.generation, self.inode = generation, inode
        if generation > 2:
            # Closing a replaced file makes the kernel free its pages, about
            # 10 ms per 40 MB: off the path of the query that asked.
            detaching = threading.Thread(
                target=_detach,
                args=(self.instance.cursor(), alias_of(generation - 2)),
                name="vx-replica-detach",
                daemon=True,
            )
            detaching.start()
            _detaching[:] = [*(t for t in _detaching if t.is_alive()), detaching]


@atexit.register
def _finish_detaching() -> None:
    # A daemon thread still inside DuckDB as the interpreter ends may crash it.
    while _detaching:
        _detaching.pop().join(timeout=5)


def _detach(cursor: duckdb.DuckDBPyConnection, alias: str) -> None:
    try:
        cursor.execute(f"DETACH DATABASE IF EXISTS {alias}")
    except duckdb.Error as exc:  # the instance is closing, say; nothing to keep
        logger.debug("detaching %s failed: %s", alias, exc)
    finally:
        cursor.close()


def alias_of(generation: int) -> str:
    """Return the name a replica file of this generation is attached under."""
    return "replica" if generation == 1 else f"replica_{generation}"


def connect(replica: Path, *, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """
    Return a sandboxed cursor on the current replica file; the caller closes it.

    Cursors share this process's instance for ``replica``, which is started
    once and follows each refresh by attaching the new file.

    Raises:
        StoreError: the replica cannot be opened.
    """
    key = (replica, memory_limit)
    with _lock:
        live = _live.get(key)
        if live is not None and not live.is_current():
            try:
                live.advance()
            except (duckdb.Error, OSError) as exc:
                logger.info("restarting the query instance on %s: %s", replica, exc)
                _live.pop(key, None)
                live = None
        if live is None:
            live = start(replica, memory_limit=memory_limit)
            _live[key] = live
            if len(_live) > _MAX_INSTANCES:
                del _live[next(iter(_live))]
        cursor = live.instance.cursor()
        alias = live.alias
    try:
        cursor.execute(f"USE {alias}")
    except duckdb.Error as exc:
        cursor.close()
        raise StoreError(f"cannot open the query replica {replica}: {exc}") from exc

    return cursor


def follow(replica: Path) -> None:
    """
    Attach the file a refresh in this process just wrote to this process's instances.

    ``serve`` refreshes after each scheduled sync; its queries then start on
    the new file without paying for the attach. A failure is left for the
    next query to meet and report. If a query is opening an instance right
    now, following is left to the next query, which checks anyway.
    """
    if not _lock.acquire(blocking=False):
        return
    try:
        for (path, _), live in list(_live.items()):
            if path == replica and not live.is_current():
                try:
                    live.advance()
                except (duckdb.Error, OSError) as exc:
                    logger.info("query instance left behind on %s: %s", replica, exc)
    finally:
        _lock.release()


def start(replica: Path, *, memory_limit: str, is_sandboxed: bool = True) -> _Live:
    """
    Start DuckDB on a replica attached read-only as ``replica``, in UTC.

    Sandboxed, the instance then loses access to files, network and
    extensions for good; only vxcache's own code (exports) asks otherwise.

    Raises:
        StoreError: the replica cannot be opened.
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_persistent_secrets": False,
        "temp_directory": f"{replica}.spill",
    }
    try:
        instance = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise StoreError(f"cannot start DuckDB: {first_line(exc)}") from exc
    try:
        inode = attach(instance, replica, alias_of(1))
        instance.execute(f"USE {alias_of(1)}")
        instance.execute("SET GLOBAL TimeZone = 'UTC'")
        if is_sandboxed:
            allowed = ", ".join(
                quote_literal(f"{replica}{end}") for end in ("", ".wal")
            )
            instance.execute(f"SET allowed_paths = [{allowed}]")
            instance.execute("SET enable_external_access = false")
            instance.execute("SET lock_configuration = true")
    except (duckdb.Error, OSError) as exc:
        instance.close()
        raise StoreError(
            f"cannot open the query replica {replica}: {first_line(exc)}"
        ) from exc

    return _Live(instance, replica, generation=1, inode=inode)


def attach(
    instance: duckdb.DuckDBPyConnection, replica: Path, alias: str
) -> int | None:
    """
    Attach a replica file read-only; return its inode, or None if it was replaced.

    Told no TYPE, DuckDB opens the file to sniff its type and keeps the
    headers it read there, then opens it again to read blocks: a refresh
    renaming the next replica over ``replica`` in between gave an instance
    one file's headers and another's blocks ("Could not read enough bytes").
    With TYPE it opens the file once. Holding the file meanwhile keeps its
    inode number from a later replica, so the same number afterwards means
    DuckDB opened this file. (Closing ``held`` drops DuckDB's POSIX read
    lock, as the refresh's copy does; no one writes a live replica.)
    """
    with replica.open("rb") as held:
        inode = os.fstat(held.fileno()).st_ino
        name = quote_literal(str(replica))
        instance.execute(f"ATTACH {name} AS {alias} (TYPE duckdb, READ_ONLY)")
        return inode if inode_of(replica) == inode else None


def inode_of(path: Path) -> int:
    """Return the inode number of ``path``, or -1 when nothing is there."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message, or its type's name."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
