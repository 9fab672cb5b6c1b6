"""
Apply and delete sessions through the node, then audit and invalidate the cache.

Every attempt becomes a ``writes`` row before anything is sent (as
``unknown``) and gets its outcome once known: ``ok``, ``failed`` (the node
refused), ``unknown`` (the answer was lost) or ``refused`` (nothing was sent).
A write is sent once; it is never retried, queued or replayed.

After the node accepts a write, the session is marked stale and read again at
once; a refresh that lands clears ``stale``, one that fails leaves it for the
next sync. A sync whose list was requested before the write skips the stale
session, so an older list never makes a written session look fresh.

Example:
    >>> with Store.open(settings) as store, NodeClient(settings.node) as client:
    ...     result = apply_session(store, client, settings, "ses_0a1b2c")
    ...     final = wait_until_settled(store, client, settings, "ses_0a1b2c")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from vxcache._time import utc_now
from vxcache._units import format_duration
from vxcache.client import NodeClient
from vxcache.config import Settings
from vxcache.errors import (
    ConfigError,
    RateLimitedError,
    RecordNotFoundError,
    SessionNotFoundError,
    StoreError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamUnavailableError,
    VxcacheError,
    WaitTimeoutError,
    WriteOutcomeUnknownError,
    WriteRefusedError,
)
from vxcache.models import Session
from vxcache.store import Store
from vxcache.sync import refresh_session

__all__ = [
    "FAILED_STATUSES",
    "GONE_STATUS",
    "IN_PROGRESS_STATUSES",
    "WriteResult",
    "apply_session",
    "cache_warning",
    "delete_session",
    "is_failed_status",
    "is_settled_status",
    "normalize_status",
    "wait_until_settled",
]

logger = logging.getLogger(__name__)

#: Statuses of a session the node is still working on (or has not started).
#: The node does not document its statuses, so every other status, including
#: one never seen before, counts as settled: waiting ends rather than hangs.
IN_PROGRESS_STATUSES: Final = frozenset(
    {
        "planned",
        "planning",
        "pending",
        "queued",
        "scheduled",
        "starting",
        "running",
        "in_progress",
        "applying",
        "deleting",
        "destroying",
        "cancelling",
        "canceling",
    }
)
#: Settled statuses that mean the work did not succeed.
FAILED_STATUSES: Final = frozenset(
    {
        "failed",
        "error",
        "errored",
        "delete_failed",
        "timed_out",
        "cancelled",
        "canceled",
        "rolled_back",
    }
)
#: What :func:`wait_until_settled` returns when the node no longer knows the session.
GONE_STATUS: Final = "gone"

_FIRST_POLL_SECONDS: Final = 0.5
_MAX_POLL_SECONDS: Final = 10.0
_POLL_GROWTH: Final = 1.5
# Write answers are small; a longer detail is cut so the audit row stays short.
_MAX_DETAIL_CHARS: Final = 500


@dataclass(frozen=True)
class WriteResult:
    """What an accepted apply or delete did; refusals and failures raise instead."""

    write_id: int
    action: str
    session_id: str
    outcome: str
    http_status: int | None
    answer: dict[str, Any] | None
    detail: str | None
    fresh: bool
    warnings: tuple[str, ...] = ()


def normalize_status(status: str) -> str:
    """Return a status as the sets spell it: ``In-Progress`` -> ``in_progress``."""
    return status.strip().lower().replace("-", "_").replace(" ", "_")


def is_settled_status(status: str) -> bool:
    """Return whether the node has finished with a session in this status."""
    return normalize_status(status) not in IN_PROGRESS_STATUSES


def is_failed_status(status: str) -> bool:
    """Return whether a settled status means the work did not succeed."""
    return normalize_status(status) in FAILED_STATUSES


def cache_warning(session: Session | None, *, session_id: str) -> str | None:
    """Return a warning when the cache believes the session is gone or deleted."""
    if session is None:
        return None
    if session.presence == "gone":
        return (
            f"the cache believes session {session_id} is gone from the node; "
            "sending anyway, the node decides"
        )
    if normalize_status(session.status) == "deleted":
        return (
            f"the cache believes session {session_id} is already deleted; "
            "sending anyway, the node decides"
        )
    return None


def apply_session(
    store: Store, client: NodeClient | None, settings: Settings, session_id: str
) -> WriteResult:
    """
    Ask the node to apply a session's saved plan, once, and record the attempt.

    Raises:
        WriteRefusedError: offline or no client; nothing was sent (exit code 3).
        UpstreamUnavailableError: the node could not be reached; nothing was sent.
        WriteOutcomeUnknownError: the request may have reached the node but its
            answer was lost; the session is marked stale.
        UpstreamError: the node refused the apply; its words are in the message.
    """
    return _write(store, client, settings, action="apply", session_id=session_id)


def delete_session(
    store: Store,
    client: NodeClient | None,
    settings: Settings,
    session_id: str,
    *,
    force: bool = False,
) -> WriteResult:
    """
    Ask the node to tear down a session's resource, once, and record the attempt.

    ``force`` passes the node's own confirmation (protected sessions need it).

    Raises:
        WriteRefusedError: offline or no client; nothing was sent (exit code 3).
        UpstreamUnavailableError: the node could not be reached; nothing was sent.
        WriteOutcomeUnknownError: the request may have reached the node but its
            answer was lost; the session is marked stale.
        UpstreamError: the node refused the delete; its words are in the message.
    """
    return _write(
        store, client, settings, action="delete", session_id=session_id, force=force
    )


def wait_until_settled(
    store: Store,
    client: NodeClient,
    settings: Settings,
    session_id: str,
    *,
    on_status: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """
    Poll the node (through the cache) until the session settles; return its status.

    Each poll is a :func:`~vxcache.sync.refresh_session`, so the cache follows
    along. Polls back off from 0.5s to 10s. ``on_status`` gets every status
    read. A session the node no longer knows ends the wait as ``"gone"``. A
    poll that fails for a passing reason (unreachable, 5xx) is logged and
    retried until the deadline.

    Raises:
        WaitTimeoutError: still in progress after ``writes.wait_timeout``.
        UpstreamError: the node refused to show the session (token, 4xx).
    """
    timeout = settings.writes.wait_timeout
    deadline = clock() + timeout
    delay = _FIRST_POLL_SECONDS
    status: str | None = None
    problem: str | None = None

    while True:
        try:
            status = _read_status(store, client, session_id)
            problem = None
        except SessionNotFoundError:
            return GONE_STATUS
        except (UpstreamUnavailableError, UpstreamServerError) as exc:
            problem = str(exc)
            logger.warning("wait poll failed session_id=%s error=%s", session_id, exc)
        if status is not None and problem is None:
            if on_status is not None:
                on_status(status)
            if is_settled_status(status):
                return status

        remaining = deadline - clock()
        if remaining <= 0:
            raise _timeout(session_id, status, problem, timeout)
        sleep(min(delay, remaining))
        delay = min(delay * _POLL_GROWTH, _MAX_POLL_SECONDS)


def _read_status(store: Store, client: NodeClient, session_id: str) -> str:
    refresh_session(store, client, session_id)
    session = store.session(session_id)
    if session is None:
        # refresh_session stores every session the node shows, so only a cache
        # replaced underneath us gets here.
        raise RecordNotFoundError(
            f"session {session_id} vanished from the cache {store.db_path} while "
            "waiting; run `vxcache sync`"
        )
    return session.status


def _timeout(
    session_id: str, status: str | None, problem: str | None, timeout: float
) -> WaitTimeoutError:
    waited = format_duration(timeout)
    if status is None:
        message = (
            f"session {session_id} could not be read for {waited} "
            f"(writes.wait_timeout): {problem}; check later with "
            f"`vxcache sessions show {session_id} --refresh`"
        )
    else:
        message = (
            f"session {session_id} is still {status} after {waited} "
            f"(writes.wait_timeout); check later with "
            f"`vxcache sessions show {session_id} --refresh`"
        )
    return WaitTimeoutError(message, session_id=session_id, status=status)


@dataclass
class _Attempt:
    """One write in flight: its audit row and when it was sent."""

    store: Store
    write_id: int
    action: str
    session_id: str
    started: float
    is_recorded: bool = False

    def record(
        self,
        outcome: str,
        *,
        http_status: int | None = None,
        detail: str | None = None,
        mark_stale: bool = False,
    ) -> bool:
        """Store the outcome; return False (and log) when the cache refused it."""
        self.is_recorded = True
        try:
            self.store.finish_write(
                self.write_id,
                outcome=outcome,
                http_status=http_status,
                detail=_clip(detail),
                duration_s=time.perf_counter() - self.started,
                stale_since=utc_now() if mark_stale else None,
            )
        except StoreError as exc:
            # The node's answer matters more than the audit: report, go on.
            logger.error(
                "write outcome not recorded write_id=%d outcome=%s error=%s",
                self.write_id,
                outcome,
                exc,
            )
            return False
        logger.info(
            "write finished write_id=%d action=%s session_id=%s outcome=%s status=%s",
            self.write_id,
            self.action,
            self.session_id,
            outcome,
            http_status,
        )
        return True


def _write(
    store: Store,
    client: NodeClient | None,
    settings: Settings,
    *,
    action: str,
    session_id: str,
    force: bool = False,
) -> WriteResult:
    warnings = _warn_about_cache(store, action=action, session_id=session_id)
    write_id = store.begin_write(
        action=action,
        session_id=session_id,
        force=force,
        actor=settings.writes.actor_name,
        at=utc_now(),
    )
    attempt = _Attempt(store, write_id, action, session_id, time.perf_counter())

    if settings.offline or client is None:
        message = (
            f"{action} of session {session_id} refused: vxcache is offline, so "
            "nothing was sent; drop --offline to reach the node"
        )
        attempt.record("refused", detail=message)
        raise WriteRefusedError(message, exit_code=3)

    answer = _send(attempt, client, force=force)
    detail = _answer_detail(answer)

    if not attempt.record("ok", detail=detail, mark_stale=True):
        warnings.append(
            f"the node accepted the {action}, but the cache could not record it; "
            f"run `vxcache sessions show {session_id} --refresh`"
        )
        is_fresh = False
    else:
        is_fresh = _refresh_after_write(store, client, session_id)
    return WriteResult(
        write_id=write_id,
        action=action,
        session_id=session_id,
        outcome="ok",
        http_status=None,
        answer=answer,
        detail=detail,
        fresh=is_fresh,
        warnings=tuple(warnings),
    )


def _send(attempt: _Attempt, client: NodeClient, *, force: bool) -> dict[str, Any]:
    """Send the write once; record any failure as its outcome and re-raise it."""
    session_id = attempt.session_id
    is_answered = False
    try:
        if attempt.action == "apply":
            answer = client.apply_session(session_id)
        else:
            answer = client.delete_session(session_id, force=force)
        is_answered = True
    except WriteOutcomeUnknownError as exc:
        attempt.record(
            "unknown", http_status=exc.status, detail=str(exc), mark_stale=True
        )
        raise
    except RateLimitedError as exc:
        # The node (or its proxy) answered and declined: nothing was done.
        attempt.record("failed", http_status=exc.status, detail=str(exc))
        raise
    except UpstreamUnavailableError as exc:
        attempt.record("refused", detail=str(exc))
        raise
    except ConfigError as exc:
        # The request could not even be built (a token that cannot travel).
        attempt.record("refused", detail=str(exc))
        raise
    except (UpstreamRejectedError, UpstreamServerError) as exc:
        attempt.record("failed", http_status=exc.status, detail=exc.detail or str(exc))
        raise
    except UpstreamError as exc:
        # Sent, but the answer is unusable: the node may have acted.
        attempt.record(
            "unknown", http_status=exc.status, detail=str(exc), mark_stale=True
        )
        raise
    finally:
        if not is_answered and not attempt.is_recorded:
            # Interrupted (Ctrl-C) while the request may be out: the row stays
            # 'unknown' and the session must not be trusted.
            attempt.record(
                "unknown", detail="interrupted before the answer", mark_stale=True
            )

    return answer


def _refresh_after_write(store: Store, client: NodeClient, session_id: str) -> bool:
    try:
        return refresh_session(store, client, session_id)
    except VxcacheError as exc:
        # The write succeeded; the session stays stale until a sync or a refresh.
        logger.warning(
            "refresh after write failed session_id=%s error=%s", session_id, exc
        )
        return False


def _warn_about_cache(store: Store, *, action: str, session_id: str) -> list[str]:
    warning = cache_warning(store.session(session_id), session_id=session_id)
    if warning is None:
        return []
    logger.warning(
        "write to a session the cache believes finished action=%s session_id=%s",
        action,
        session_id,
    )
    return [warning]


def _answer_detail(answer: dict[str, Any]) -> str | None:
    for key in ("message", "detail", "status"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_DETAIL_CHARS:
        return text
    return text[: _MAX_DETAIL_CHARS - 1].rstrip() + "…"
