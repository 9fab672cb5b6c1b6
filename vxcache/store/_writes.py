"""Writing the audit of apply and delete, staleness, and refreshed sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update

from vxcache.models import Session, Write
from vxcache.records import SessionRecord
from vxcache.store._base import inserted_id
from vxcache.store._sessions import SessionMixin
from vxcache.store._types import ChangedSession

_SESSIONS = Session.__table__  # type: ignore[attr-defined]
_WRITES = Write.__table__  # type: ignore[attr-defined]


class WriteMixin(SessionMixin):
    """The write audit and what a write does to the cached session."""

    def begin_write(
        self, *, action: str, session_id: str, force: bool, actor: str, at: datetime
    ) -> int:
        """Record a write before it is sent, as ``unknown`` until its answer lands."""
        with self.transaction() as (connection, seq):
            result = connection.execute(
                _WRITES.insert().values(
                    at=at,
                    action=action,
                    session_id=session_id,
                    force=force,
                    actor=actor,
                    outcome="unknown",
                    change_seq=seq,
                )
            )
        return inserted_id(result)

    def finish_write(
        self,
        write_id: int,
        *,
        outcome: str,
        http_status: int | None,
        detail: str | None,
        duration_s: float,
        stale_since: datetime | None,
    ) -> None:
        """Record a write's outcome; mark its session stale when the node accepted it."""
        with self.transaction() as (connection, seq):
            connection.execute(
                _WRITES.update()
                .where(_WRITES.c.write_id == write_id)
                .values(
                    outcome=outcome,
                    http_status=http_status,
                    detail=detail,
                    duration_s=duration_s,
                    change_seq=seq,
                )
            )
            if stale_since is None:
                return
            session_id = connection.execute(
                _WRITES.select()
                .with_only_columns(_WRITES.c.session_id)
                .where(_WRITES.c.write_id == write_id)
            ).scalar_one()
            connection.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.session_id == session_id)
                .values(
                    stale=True,
                    stale_since=stale_since,
                    pull_wanted=True,
                    change_seq=seq,
                )
            )

    def apply_refresh(
        self,
        record: SessionRecord,
        change: ChangedSession | None,
        *,
        fetched_at: datetime,
        observed_at: datetime,
    ) -> bool:
        """
        Store a session read fresh from the node outside a sync.

        ``stale`` is cleared only when the answer was requested after the session
        was marked stale, so an older answer never hides a newer write. Returns
        whether the session is fresh now.
        """
        with self.transaction() as (connection, seq):
            if change is not None:
                self._add_versions(
                    connection,
                    [change],
                    sync_id=None,
                    observed_at=observed_at,
                    via="show",
                    seq=seq,
                )
            connection.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.session_id == record.session_id)
                .where(_SESSIONS.c.presence == "gone")
                .values(
                    presence="aged_out", presence_changed_at=observed_at, change_seq=seq
                )
            )
            cleared = connection.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.session_id == record.session_id)
                .where(
                    or_(
                        _SESSIONS.c.stale_since.is_(None),
                        _SESSIONS.c.stale_since <= fetched_at,
                    )
                )
                .values(
                    stale=False,
                    stale_since=None,
                    last_seen_at=observed_at,
                    change_seq=seq,
                )
            )

        return bool(cleared.rowcount)
