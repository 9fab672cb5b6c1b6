"""
The devnode's sessions: ordering, lifecycle transitions, arrivals and wire bodies.

Time moves lazily: every request first calls `advance(now)`, which settles the
transitions that are due and adds the sessions that arrived since the last call.
Only applies, deletes and arrivals move; sessions seeded in flight stay so.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import OrderedDict
from typing import Any, Final

import orjson

from vxcache.devnode._config import Settings
from vxcache.devnode._data import (
    OPTIONAL_FIELDS,
    Session,
    SessionFactory,
    session_details,
)
from vxcache.devnode._tfstate import PullParts, SessionFacts, build_pull_parts
from vxcache.devnode._time import NANOS, PLAIN_FORM, parse_wire_time, render_time

_MAX_ARRIVALS_PER_STEP: Final = 10_000
_PULL_CACHE_SIZE: Final = 4


class SessionNotFoundError(KeyError):
    """The session id is unknown to the node, or was purged."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.detail = f"Session {session_id} not found"


class SessionConflictError(Exception):
    """The session's status does not allow the requested action."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _order_key(session: Session) -> int:
    return session.order_nanos


def _check_status(changes: dict[str, Any]) -> None:
    status = changes.get("status", "")
    if not isinstance(status, str):
        raise ValueError(f"status must be a string, not {status!r}")


class SessionStore:
    """
    Hold the sessions in start order and answer the node routes from them.
    """

    def __init__(
        self, *, seed: int, count: int, anchor_nanos: int, settings: Settings
    ) -> None:
        self.seed = seed
        self.settings = settings
        self.factory = SessionFactory(seed)
        self._ordered = self.factory.history(count=count, anchor_nanos=anchor_nanos)
        self._by_id = {session.session_id: session for session in self._ordered}
        self._pending: dict[str, tuple[int, str]] = {}
        self._lock = threading.RLock()
        self._version = 0
        self._list_cache: tuple[tuple[object, ...], bytes] | None = None
        self._pull_cache: OrderedDict[tuple[object, ...], PullParts] = OrderedDict()
        # Arrivals count from the moment the node starts, not from the anchor.
        self._arrivals_from = time.time_ns()
        self._arrivals_made = 0

    def __len__(self) -> int:
        return len(self._ordered)

    def changed(self) -> None:
        """
        Note that the data or a setting changed, so cached list bodies are stale.
        """
        self._version += 1

    def _touch(self, session: Session) -> None:
        session.forget_wire()
        self.changed()

    def get(self, session_id: str) -> Session:
        """
        Return a session by id.

        Raises:
            SessionNotFoundError: no such session.
        """
        session = self._by_id.get(session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    # Time

    def restart_arrivals(self, now_nanos: int) -> None:
        """
        Count arrivals from now on, e.g. after the rate changed.
        """
        with self._lock:
            self._arrivals_from = now_nanos
            self._arrivals_made = 0

    def advance(self, now_nanos: int) -> None:
        """
        Settle due transitions and add the sessions that arrived until now.
        """
        with self._lock:
            self._add_arrivals(now_nanos)
            due = [item for item in self._pending.items() if item[1][0] <= now_nanos]
            for session_id, (due_nanos, status) in due:
                del self._pending[session_id]
                self._settle(self._by_id[session_id], status, due_nanos)

    def _settle(self, session: Session, status: str, at_nanos: int) -> None:
        session.status = status
        session.ended_nanos = session.quantize(at_nanos)
        session.wire_times.pop("ended_at", None)
        if status == "succeeded" and "resource_id" not in session.fields:
            script = session.fields.get("script")
            session.fields["resource_id"] = self.factory.resource_id(script)
        self._touch(session)

    def _add_arrivals(self, now_nanos: int) -> None:
        rate = self.settings.rate_per_minute
        if rate <= 0:
            return
        interval = 60 * NANOS / rate
        due = int((now_nanos - self._arrivals_from) / interval)
        if due - self._arrivals_made > _MAX_ARRIVALS_PER_STEP:
            # A long quiet spell at a high rate: skip ahead rather than stall.
            self._arrivals_made = due - _MAX_ARRIVALS_PER_STEP
        while self._arrivals_made < due:
            self._arrivals_made += 1
            at_nanos = self._arrivals_from + int(self._arrivals_made * interval)
            self._arrive(at_nanos)

    def _arrive(self, at_nanos: int) -> None:
        rng = self.factory.rng
        status = "planned" if rng.random() < 0.3 else "running"
        session = self.factory.make(
            started_nanos=at_nanos, settle_by_nanos=at_nanos, status=status
        )
        self._insert(session)
        if status == "running":
            outcome = "succeeded" if rng.random() < 0.85 else "failed"
            self._schedule(session, outcome, from_nanos=at_nanos)

    def _schedule(self, session: Session, status: str, *, from_nanos: int) -> None:
        delay = int(self.settings.transition_seconds * NANOS)
        self._pending[session.session_id] = (from_nanos + delay, status)

    def _insert(self, session: Session) -> None:
        bisect.insort(self._ordered, session, key=_order_key)
        self._by_id[session.session_id] = session
        self.changed()

    # Node routes

    def list_body(self) -> bytes:
        """
        Return the list answer as JSON bytes, cached until anything changes.
        """
        with self._lock:
            settings = self.settings
            key = (
                self._version,
                settings.window,
                settings.time_style,
                settings.list_shape,
            )
            if self._list_cache is not None and self._list_cache[0] == key:
                return self._list_cache[1]

            window = self._ordered[-settings.window :] if settings.window > 0 else []
            records = [
                session.to_wire(settings.time_style) for session in reversed(window)
            ]
            payload: object = records
            if settings.list_shape == "wrapped":
                payload = {"sessions": records, "count": len(records)}
            body = orjson.dumps(payload)
            self._list_cache = (key, body)

            return body

    def show(self, session_id: str) -> dict[str, Any]:
        """
        Return the full record of one session, with the fields only show sends.
        """
        with self._lock:
            session = self.get(session_id)
            record = dict(session.to_wire(self.settings.time_style))
            record.update(session_details(session, seed=self.seed))
            record.update(session.extra)

            return record

    def pull(self, session_id: str, *, now_nanos: int) -> dict[str, Any]:
        """
        Return the pull answer; the state is embedded as ready-made JSON.
        """
        with self._lock:
            session = self.get(session_id)
            parts = self._pull_parts(session)
            form = session.form if self.settings.time_style == "mixed" else PLAIN_FORM
            state: object = orjson.Fragment(parts.state_json)
            if self.settings.state_as_string:
                state = parts.state_json.decode()

            return {
                "session_id": session.session_id,
                "pulled_at": render_time(now_nanos - now_nanos % NANOS, form),
                "terraform_state": state,
                "artifacts": parts.artifacts,
            }

    def _pull_parts(self, session: Session) -> PullParts:
        target = self.settings.state_bytes
        key = (session.session_id, session.status, target)
        parts = self._pull_cache.get(key)
        if parts is None:
            facts = SessionFacts(
                seed=self.seed,
                session_id=session.session_id,
                status=session.status,
                script=str(session.fields.get("script") or "install.sh"),
                hostname=str(session.fields.get("hostname") or "localhost"),
            )
            parts = build_pull_parts(facts, target_bytes=target)
            self._pull_cache[key] = parts
            while len(self._pull_cache) > _PULL_CACHE_SIZE:
                self._pull_cache.popitem(last=False)
        self._pull_cache.move_to_end(key)

        return parts

    def apply(self, session_id: str, *, now_nanos: int) -> dict[str, Any]:
        """
        Start applying a planned session; it settles after the transition time.

        Raises:
            SessionNotFoundError: no such session.
            SessionConflictError: the session is not planned.
        """
        with self._lock:
            session = self.get(session_id)
            if session.status != "planned":
                raise SessionConflictError(
                    f"Session {session_id} is {session.status}; "
                    "only planned sessions can be applied"
                )
            self._start(session, "running", now_nanos)
            self._schedule(session, self._apply_outcome(session), from_nanos=now_nanos)

            return {
                "session_id": session_id,
                "status": "running",
                "message": "apply started",
            }

    def _apply_outcome(self, session: Session) -> str:
        choice = self.settings.next_apply_outcome
        if choice != "seeded":
            return choice
        roll = random.Random(f"{self.seed}:{session.session_id}:apply")  # noqa: S311
        return "succeeded" if roll.random() < 0.85 else "failed"

    def delete(self, session_id: str, *, force: bool, now_nanos: int) -> dict[str, Any]:
        """
        Start tearing a session's resource down; it is deleted after the transition.

        Raises:
            SessionNotFoundError: no such session.
            SessionConflictError: already deleting or deleted, or protected
                and not forced.
        """
        with self._lock:
            session = self.get(session_id)
            if session.status in ("deleting", "deleted"):
                raise SessionConflictError(
                    f"Session {session_id} is already {session.status}"
                )
            if session.extra.get("protected") is True and not force:
                raise SessionConflictError(
                    f"Session {session_id} is protected; confirm with force=true"
                )
            self._start(session, "deleting", now_nanos)
            self._schedule(session, "deleted", from_nanos=now_nanos)

            return {"session_id": session_id, "status": "deleting"}

    def _start(self, session: Session, status: str, now_nanos: int) -> None:
        session.status = status
        session.ended_nanos = None
        session.wire_times.pop("ended_at", None)
        self._pending.pop(session.session_id, None)
        self._touch(session)

    # Admin

    def create(self, record: dict[str, Any], *, now_nanos: int) -> dict[str, Any]:
        """
        Add a session from a partial record; missing id and started_at are filled.

        Raises:
            SessionConflictError: the id is taken.
            ValueError: the id or status is not a string.
        """
        with self._lock:
            changes = dict(record)
            session_id = changes.pop("session_id", None) or self.factory.new_id()
            status = changes.pop("status", "succeeded")
            if not isinstance(session_id, str):
                raise ValueError(f"session_id must be a string, not {session_id!r}")
            _check_status({"status": status})
            if session_id in self._by_id:
                raise SessionConflictError(f"Session {session_id} already exists")
            session = self.factory.make(
                started_nanos=now_nanos, settle_by_nanos=now_nanos, status=status
            )
            session.session_id = session_id
            session.fields, session.extra = {}, {}
            session.started_nanos = session.quantize(now_nanos)
            session.ended_nanos = None
            self._change(session, changes)
            self._insert(session)

            return session.to_wire(self.settings.time_style)

    def patch(self, session_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """
        Change fields of a session; times given are sent verbatim from now on.

        Raises:
            SessionNotFoundError: no such session.
            ValueError: the change renames the session or sets a non-string status.
        """
        with self._lock:
            session = self.get(session_id)
            if changes.get("session_id", session_id) != session_id:
                raise ValueError("session_id cannot change; create a new session")
            changes = {
                key: value for key, value in changes.items() if key != "session_id"
            }
            _check_status(changes)
            if "status" in changes:
                self._pending.pop(session_id, None)
            self._ordered.remove(session)
            self._change(session, changes)
            self._insert(session)

            return session.to_wire(self.settings.time_style)

    def _change(self, session: Session, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "status":
                session.status = value
            elif key in ("started_at", "ended_at"):
                session.wire_times[key] = value
                nanos = parse_wire_time(value)
                if key == "started_at":
                    session.started_nanos = nanos
                    session.order_nanos = (
                        nanos if nanos is not None else session.order_nanos
                    )
                else:
                    session.ended_nanos = nanos
            elif key in OPTIONAL_FIELDS:
                session.fields[key] = value
            else:
                session.extra[key] = value
        session.forget_wire()

    def purge(self, session_id: str) -> None:
        """
        Forget a session entirely.

        Raises:
            SessionNotFoundError: no such session.
        """
        with self._lock:
            session = self.get(session_id)
            del self._by_id[session_id]
            self._ordered.remove(session)
            self._pending.pop(session_id, None)
            self.changed()
