"""Reading the cache for the command line and the API: sessions, history, artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from vxcache.freshness import SUCCESS_OUTCOMES, Freshness
from vxcache.models import Artifact, Session, SessionVersion, SyncRun, Write
from vxcache.store._pulls import PullMixin

_SESSIONS = Session.__table__  # type: ignore[attr-defined]
_HISTORY = SessionVersion.__table__  # type: ignore[attr-defined]
_ARTIFACTS = Artifact.__table__  # type: ignore[attr-defined]
_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_WRITES = Write.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """The filters of ``vxcache sessions list`` and ``GET /v1/sessions``."""

    status: str | None = None
    hostname: str | None = None
    username: str | None = None
    script: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 100
    offset: int = 0


class ReadMixin(PullMixin):
    """Queries behind the read commands; the analytical ones live in ``query``."""

    def list_sessions(self, where: SessionFilter) -> list[Session]:
        """Return cached sessions matching the filter, newest first."""
        query = select(Session)
        column = _SESSIONS.c
        for name, value in (
            ("status", where.status),
            ("hostname", where.hostname),
            ("username", where.username),
            ("script", where.script),
        ):
            if value is not None:
                query = query.where(column[name] == value)
        if where.since is not None:
            query = query.where(column.started_at >= where.since)
        if where.until is not None:
            query = query.where(column.started_at < where.until)
        query = query.order_by(column.started_at.desc(), column.session_id).offset(
            where.offset
        )
        if where.limit is not None:
            query = query.limit(where.limit)
        return self._read_sessions(query)

    def session(self, session_id: str) -> Session | None:
        """Return the cached session, or None."""
        found = self._read_sessions(
            select(Session).where(_SESSIONS.c.session_id == session_id)
        )
        return found[0] if found else None

    def recent_sessions(self, limit: int) -> list[Session]:
        """Return the sessions the node listed last, newest first, as the node would."""
        query = (
            select(Session)
            .where(_SESSIONS.c.presence == "listed")
            .order_by(_SESSIONS.c.started_at.desc(), _SESSIONS.c.session_id)
            .limit(limit)
        )
        return self._read_sessions(query)

    def _read_sessions(self, query: Select[Session]) -> list[Session]:
        # A listed session was seen by the latest successful list; that time is
        # kept once on the sync run rather than rewritten on every row.
        listed_at = (
            select(func.max(_RUNS.c.listed_at))
            .where(_RUNS.c.outcome.in_(SUCCESS_OUTCOMES))
            .scalar_subquery()
        )
        with self.reading() as connection:
            rows = connection.execute(query).all()
            last_listed = connection.execute(select(listed_at)).scalar()
        last_listed_at = _RUNS.c.listed_at.type.process_result_value(last_listed, None)
        sessions = []
        for row in rows:
            values = dict(row._mapping)
            if values["presence"] == "listed" and last_listed_at is not None:
                values["last_seen_at"] = last_listed_at
            sessions.append(Session.model_construct(**values))
        return sessions

    def history(self, session_id: str) -> list[SessionVersion]:
        """Return every observed version of a session, oldest first."""
        query = (
            select(SessionVersion)
            .where(_HISTORY.c.session_id == session_id)
            .order_by(_HISTORY.c.version)
        )
        with self.reading() as connection:
            return [
                SessionVersion.model_construct(**row._mapping)
                for row in connection.execute(query)
            ]

    def artifacts(self, session_id: str) -> list[Artifact]:
        """Return the artifacts of the session's latest pull."""
        latest = (
            select(_SESSIONS.c.last_pull_id)
            .where(_SESSIONS.c.session_id == session_id)
            .scalar_subquery()
        )
        query = (
            select(Artifact)
            .where(_ARTIFACTS.c.pull_id == latest)
            .order_by(_ARTIFACTS.c.name)
        )
        with self.reading() as connection:
            return [
                Artifact.model_construct(**row._mapping)
                for row in connection.execute(query)
            ]

    def freshness(self) -> Freshness:
        """Return when the node was last mirrored, and how the last attempt went."""
        finished = _RUNS.c.finished_at
        with self.reading() as connection:
            success = connection.execute(
                select(func.max(finished)).where(_RUNS.c.outcome.in_(SUCCESS_OUTCOMES))
            ).scalar()
            last = connection.execute(
                select(finished, _RUNS.c.outcome, _RUNS.c.error)
                .where(_RUNS.c.outcome.is_not(None))
                .order_by(_RUNS.c.sync_id.desc())
                .limit(1)
            ).first()
        # func.max loses the column type; read it back through the model's type.
        success_at = _RUNS.c.finished_at.type.process_result_value(success, None)
        if last is None:
            return Freshness(success_at, None, None, None)

        return Freshness(success_at, last[0], last[1], last[2])

    def counts(self) -> dict[str, Any]:
        """Return row counts for ``vxcache status``."""
        with self.reading() as connection:
            by_presence: dict[str, int] = dict(
                connection.execute(
                    select(_SESSIONS.c.presence, func.count()).group_by(
                        _SESSIONS.c.presence
                    )
                ).all()
            )
            versions = connection.execute(
                select(func.count()).select_from(_HISTORY)
            ).scalar()
            writes = connection.execute(
                select(func.count()).select_from(_WRITES)
            ).scalar()
            stale = connection.execute(
                select(func.count()).select_from(_SESSIONS).where(_SESSIONS.c.stale)
            ).scalar()
        return {
            "sessions": sum(by_presence.values()),
            "listed": by_presence.get("listed", 0),
            "aged_out": by_presence.get("aged_out", 0),
            "gone": by_presence.get("gone", 0),
            "stale": stale or 0,
            "versions": versions or 0,
            "writes": writes or 0,
        }
