"""Writing sessions and their version chain."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, func, select, update

from vxcache.errors import StoreError
from vxcache.models import Session, SessionVersion, SyncRun
from vxcache.records import SESSION_FIELDS, SessionRecord
from vxcache.store._base import StoreBase
from vxcache.store._types import ChangedSession, IndexEntry, ListingChanges

_SESSIONS = Session.__table__  # type: ignore[attr-defined]
_HISTORY = SessionVersion.__table__  # type: ignore[attr-defined]
_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_FIELDS = SESSION_FIELDS[1:]  # everything but the key
_SESSION_COLUMNS = (
    "session_id",
    *_FIELDS,
    "extra",
    "fingerprint",
    "wire_digest",
    "version",
    "first_seen_at",
    "last_seen_at",
    "presence",
    "presence_changed_at",
    "stale",
    "stale_since",
    "pull_wanted",
    "last_pull_id",
    "change_seq",
)
_VERSION_COLUMNS = (
    "session_id",
    "version",
    *_FIELDS,
    "extra",
    "valid_from",
    "valid_to",
    "sync_id",
    "observed_via",
    "change_seq",
)


def _insert_sql(table: Any, columns: Sequence[str]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"


# Bulk inserts and the index read go to the driver as plain tuples: SQLAlchemy's
# per-row parameter and type processing took longer than SQLite's own work.
_INSERT_VERSION = _insert_sql(_HISTORY, _VERSION_COLUMNS)
_SELECT_INDEX = (
    "SELECT session_id, fingerprint, version, presence, wire_digest "
    f"FROM {_SESSIONS.name}"
)
_COPY_FIRST_VERSIONS = (
    f"INSERT INTO {_HISTORY.name} ({', '.join(_VERSION_COLUMNS)}) "
    f"SELECT session_id, 1, {', '.join((*_FIELDS, 'extra'))}, first_seen_at, NULL, ?, "
    f"'list', change_seq FROM {_SESSIONS.name} WHERE change_seq = ?"
)
_SET_DIGEST = f"UPDATE {_SESSIONS.name} SET wire_digest = ? WHERE session_id = ?"
_NEW_SESSION_BOUND = len(_FIELDS) + 4  # the key, the fields, extra and digests


def _insert_new_sql(observed_at: str, seq: int) -> str:
    """
    Return the INSERT of new sessions observed together.

    The values all of them share are written into the statement, so each row
    binds only its own: binding parameters is most of a bulk insert's time.
    (``INSERT ... SELECT`` from a table of the shared values would bind as
    little, but makes SQLite open a statement journal for every row.)
    """
    at = "'" + observed_at.replace("'", "''") + "'"
    # version .. change_seq, in the order of _SESSION_COLUMNS
    shared = f"1, {at}, NULL, 'listed', {at}, 0, NULL, 1, NULL, {int(seq)}"
    return (
        f"INSERT INTO {_SESSIONS.name} ({', '.join(_SESSION_COLUMNS)}) "
        f"VALUES ({', '.join('?' * _NEW_SESSION_BOUND)}, {shared})"
    )


def _stored_time(value: datetime | None) -> str | None:
    """Return the text that UTCDateTime stores through SQLAlchemy's SQLite DATETIME."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use an aware UTC value")
    # Sliced rather than made naive first: the "+00:00" of an aware UTC value
    # is always its last six characters, and replace() costs more than a slice.
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _extra_json(record: SessionRecord) -> str | None:
    return orjson.dumps(record.extra).decode() if record.extra else None


def _fields(record: SessionRecord) -> dict[str, Any]:
    return {
        "status": record.status,
        "hostname": record.hostname,
        "username": record.username,
        "script": record.script,
        "resource_id": record.resource_id,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "extra": _extra_json(record),
    }


def _stored_fields(record: SessionRecord) -> tuple[Any, ...]:
    """Return ``_fields`` of a record as the driver takes them, in that order."""
    return (
        record.status,
        record.hostname,
        record.username,
        record.script,
        record.resource_id,
        _stored_time(record.started_at),
        _stored_time(record.ended_at),
        _extra_json(record),
    )


class SessionMixin(StoreBase):
    """Sessions, their history, presence and staleness."""

    def session_index(self) -> dict[str, IndexEntry]:
        """Return fingerprint, version, presence and wire digest of every cached session."""
        with self.reading() as connection:
            result = connection.exec_driver_sql(_SELECT_INDEX)
            try:
                # The driver's own tuples: building SQLAlchemy rows doubled this read.
                rows = result.cursor.fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"reading the cache failed: {exc}") from exc
            finally:
                result.close()
        entry = IndexEntry._make
        return {row[0]: entry(row[1:]) for row in rows}

    def session_index_of(self, session_id: str) -> IndexEntry | None:
        """Return the index entry of one session."""
        columns = ("fingerprint", "version", "presence", "wire_digest")
        query = select(*(_SESSIONS.c[name] for name in columns)).where(
            _SESSIONS.c.session_id == session_id
        )
        with self.reading() as connection:
            row = connection.execute(query).first()
        return IndexEntry(*row) if row else None

    def stale_since(self) -> dict[str, datetime]:
        """Return when each stale session was marked stale."""
        query = select(_SESSIONS.c.session_id, _SESSIONS.c.stale_since).where(
            _SESSIONS.c.stale
        )
        with self.reading() as connection:
            return {row[0]: row[1] for row in connection.execute(query)}

    def pull_basis(
        self, session_ids: Iterable[str]
    ) -> dict[str, tuple[str, datetime | None]]:
        """Return the cached status and ``ended_at`` of some sessions."""
        wanted = list(session_ids)
        found: dict[str, tuple[str, datetime | None]] = {}
        query = select(
            _SESSIONS.c.session_id, _SESSIONS.c.status, _SESSIONS.c.ended_at
        ).where(_SESSIONS.c.session_id.in_(bindparam("ids", expanding=True)))
        with self.reading() as connection:
            for start in range(0, len(wanted), 500):
                rows = connection.execute(query, {"ids": wanted[start : start + 500]})
                found.update({row[0]: (row[1], row[2]) for row in rows})
        return found

    def recheck_candidates(self, limit: int) -> list[str]:
        """Return aged-out sessions seen longest ago, to ask the node about again."""
        query = (
            select(_SESSIONS.c.session_id)
            .where(_SESSIONS.c.presence == "aged_out")
            .order_by(_SESSIONS.c.last_seen_at, _SESSIONS.c.session_id)
            .limit(limit)
        )
        with self.reading() as connection:
            return list(connection.execute(query).scalars())

    def started_at_of(self, session_ids: Sequence[str]) -> list[datetime]:
        """Return the ``started_at`` of those of some sessions that have one."""
        query = (
            select(_SESSIONS.c.started_at)
            .where(_SESSIONS.c.session_id.in_(bindparam("ids", expanding=True)))
            .where(_SESSIONS.c.started_at.is_not(None))
        )
        starts: list[datetime] = []
        with self.reading() as connection:
            for begin in range(0, len(session_ids), 500):
                chunk = session_ids[begin : begin + 500]
                starts.extend(connection.execute(query, {"ids": chunk}).scalars())
        return starts

    def newest_listed_start(self) -> datetime | None:
        """Return the newest ``started_at`` among sessions in the latest list."""
        query = (
            select(_SESSIONS.c.started_at)
            .where(_SESSIONS.c.presence == "listed")
            .where(_SESSIONS.c.started_at.is_not(None))
            .order_by(_SESSIONS.c.started_at.desc())
            .limit(1)
        )
        with self.reading() as connection:
            return connection.execute(query).scalar()

    def last_nonempty_list(self) -> dict[str, datetime | None]:
        """
        Return the sessions of the latest non-empty list, with their ``started_at``.

        Only for when the latest list was empty: that list moved every session
        out of ``listed`` (to aged out or gone), and those are the ones returned.
        Empty when no list since the latest non-empty one was empty.
        """
        runs = _RUNS.c
        latest_full = (
            select(func.max(runs.sync_id)).where(runs.listed > 0).scalar_subquery()
        )
        first_empty = (
            select(func.min(runs.listed_at))
            .where(runs.listed == 0)
            .where(runs.sync_id > latest_full)
            .scalar_subquery()
        )
        query = (
            select(_SESSIONS.c.session_id, _SESSIONS.c.started_at)
            .where(_SESSIONS.c.presence != "listed")
            .where(_SESSIONS.c.presence_changed_at >= first_empty)
            .where(_SESSIONS.c.first_seen_at < first_empty)
        )
        with self.reading() as connection:
            return {row[0]: row[1] for row in connection.execute(query)}

    def apply_listing(
        self,
        changes: ListingChanges,
        *,
        sync_id: int | None,
        observed_at: datetime,
        read_at_seq: int | None = None,
    ) -> set[str]:
        """
        Write what one list answer changed, in one transaction.

        ``read_at_seq`` is the change number at which the caller read the rows
        it diffed. A session written since then (a write and its refresh that
        landed while the list was in flight) is newer than the list: it is left
        alone, checked inside the transaction so nothing can slip in between.
        Returns the sessions left alone.
        """
        with self.transaction() as (connection, seq):
            overtaken: set[str] = set()
            if read_at_seq is not None:
                overtaken = set(
                    connection.execute(
                        select(_SESSIONS.c.session_id).where(
                            _SESSIONS.c.change_seq > read_at_seq
                        )
                    ).scalars()
                )
                changes = changes.without(overtaken)
            if changes.new:
                self._insert_new(
                    connection,
                    changes.new,
                    sync_id=sync_id,
                    observed_at=observed_at,
                    seq=seq,
                )
            if changes.changed:
                self._add_versions(
                    connection,
                    changes.changed,
                    sync_id=sync_id,
                    observed_at=observed_at,
                    via="list",
                    seq=seq,
                )
            self._move_presence(
                connection,
                changes.relisted,
                presence="listed",
                observed_at=observed_at,
                seq=seq,
            )
            self._update_each(
                connection, changes.refreshed, seq=seq, stale=False, stale_since=None
            )
            if changes.digests:
                # Bookkeeping only: no public column changes, so no change number.
                connection.exec_driver_sql(
                    _SET_DIGEST,
                    [(r.wire_digest, r.session_id) for r in changes.digests],
                )

        return overtaken

    def apply_observations(
        self,
        *,
        sync_id: int | None,
        observed_at: datetime,
        aged_out: Sequence[tuple[SessionRecord, ChangedSession | None]],
        gone: Sequence[str],
    ) -> None:
        """Record what show said of sessions missing from the list."""
        with self.transaction() as (connection, seq):
            changed = [change for _record, change in aged_out if change is not None]
            if changed:
                self._add_versions(
                    connection,
                    changed,
                    sync_id=sync_id,
                    observed_at=observed_at,
                    via="show",
                    seq=seq,
                )
            seen = [record.session_id for record, _change in aged_out]
            self._update_each(connection, seen, seq=seq, last_seen_at=observed_at)
            self._move_presence(
                connection, seen, presence="aged_out", observed_at=observed_at, seq=seq
            )
            self._move_presence(
                connection, gone, presence="gone", observed_at=observed_at, seq=seq
            )

    def _insert_new(
        self,
        connection: Connection,
        records: Sequence[SessionRecord],
        *,
        sync_id: int | None,
        observed_at: datetime,
        seq: int,
    ) -> None:
        """Insert new sessions and their first versions; the transaction's first write."""
        connection.exec_driver_sql(
            _insert_new_sql(_stored_time(observed_at) or "", seq),
            [
                (r.session_id, *_stored_fields(r), r.fingerprint, r.wire_digest)
                for r in records
            ],
        )
        # The first versions are copied inside SQLite rather than bound a second
        # time: the new rows are the only ones this transaction has numbered yet.
        connection.exec_driver_sql(_COPY_FIRST_VERSIONS, (sync_id, seq))

    def _add_versions(
        self,
        connection: Connection,
        changes: Sequence[ChangedSession],
        *,
        sync_id: int | None,
        observed_at: datetime,
        via: str,
        seq: int,
    ) -> None:
        close_previous = (
            update(_HISTORY)
            .where(_HISTORY.c.session_id == bindparam("sid"))
            .where(_HISTORY.c.version == bindparam("previous"))
            .values(valid_to=observed_at, change_seq=seq)
        )
        connection.execute(
            close_previous,
            [{"sid": c.record.session_id, "previous": c.version - 1} for c in changes],
        )
        tail = (_stored_time(observed_at), None, sync_id, via, seq)
        rows = [
            (c.record.session_id, c.version, *_stored_fields(c.record), *tail)
            for c in changes
        ]
        connection.exec_driver_sql(_INSERT_VERSION, rows)
        update_current = (
            update(_SESSIONS)
            .where(_SESSIONS.c.session_id == bindparam("sid"))
            .values(
                {
                    name: bindparam(name)
                    for name in (
                        *_FIELDS,
                        "extra",
                        "fingerprint",
                        "wire_digest",
                        "version",
                    )
                }
            )
            .values(
                pull_wanted=_SESSIONS.c.pull_wanted | bindparam("wants_pull"),
                change_seq=seq,
            )
        )
        connection.execute(
            update_current,
            [
                {
                    "sid": c.record.session_id,
                    **_fields(c.record),
                    "fingerprint": c.record.fingerprint,
                    "wire_digest": c.record.wire_digest,
                    "version": c.version,
                    "wants_pull": c.wants_pull,
                }
                for c in changes
            ],
        )

    def _update_each(
        self,
        connection: Connection,
        session_ids: Sequence[str],
        *,
        seq: int,
        **values: Any,
    ) -> None:
        if not session_ids:
            return
        statement = (
            update(_SESSIONS)
            .where(_SESSIONS.c.session_id == bindparam("sid"))
            .values(change_seq=seq, **values)
        )
        connection.execute(statement, [{"sid": sid} for sid in session_ids])

    def _move_presence(
        self,
        connection: Connection,
        session_ids: Sequence[str],
        *,
        presence: str,
        observed_at: datetime,
        seq: int,
    ) -> None:
        # Only a real transition moves presence_changed_at: a session seen gone
        # twice keeps the time it was first seen gone.
        if not session_ids:
            return
        statement = (
            update(_SESSIONS)
            .where(_SESSIONS.c.session_id == bindparam("sid"))
            .where(_SESSIONS.c.presence != presence)
            .values(presence=presence, presence_changed_at=observed_at, change_seq=seq)
        )
        connection.execute(statement, [{"sid": sid} for sid in session_ids])
