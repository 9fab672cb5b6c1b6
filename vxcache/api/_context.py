"""What every route reads: the settings, the open store, freshness and the sync runner."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from filelock import Timeout

from vxcache._time import utc_now
from vxcache.config import Settings
from vxcache.errors import CacheBusyError, UpstreamUnavailableError
from vxcache.freshness import Freshness
from vxcache.query import refresh_replica
from vxcache.schedule import sync_once
from vxcache.store import Store
from vxcache.sync import SyncSummary, sync_lock

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ApiContext:
    """The state one API app shares between requests; close it when the app stops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.open(settings)
        self._sync_guard = threading.Lock()
        self._lock = threading.Lock()
        self._contact: tuple[datetime, bool] | None = None
        self._found: tuple[int, Freshness] | None = None
        self._memos: dict[Hashable, tuple[int, Any]] = {}

    def is_authorized(self, request: Request) -> bool:
        """Return whether the caller passed the token check (always, without a token)."""
        if not self.settings.api.token.get_secret_value():
            return True
        return bool(getattr(request.state, "authorized", False))

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    # -- answers that change only when the cache does ---------------------------

    def memo(self, key: Hashable, seq: int, build: Callable[[], T]) -> T:
        """
        Return what ``build`` made at change ``seq`` of the cache, building it once.

        Every write to the cache bumps its change counter (``store.change_seq``),
        so an answer built at one value stays right until the next; one answer
        per key is kept.
        """
        with self._lock:
            kept = self._memos.get(key)
        if kept is not None and kept[0] == seq:
            return kept[1]  # type: ignore[no-any-return]
        value = build()
        with self._lock:
            self._memos[key] = (seq, value)
        return value

    # -- freshness ---------------------------------------------------------------

    def freshness(self, *, seq: int | None = None) -> dict[str, Any]:
        """
        Return when the cache last mirrored the node, how long ago, and if it answered.

        ``seq`` is the cache's change counter when the caller read it already.
        """
        if seq is None:
            seq = self.store.change_seq()
        found = self.memo("freshness", seq, self.store.freshness)
        synced_at = found.last_success_at
        age = None if synced_at is None else (utc_now() - synced_at).total_seconds()
        reachable: bool | None = None
        if found.last_attempt_at is not None:
            reachable = found.last_attempt_outcome != "failed"
        with self._lock:
            contact = self._contact
        if contact is not None and (
            found.last_attempt_at is None or contact[0] >= found.last_attempt_at
        ):
            reachable = contact[1]

        return {
            "synced_at": synced_at,
            "age_seconds": None if age is None else round(age, 3),
            "node_reachable": reachable,
        }

    def freshness_or_none(self) -> dict[str, Any] | None:
        """Return the freshness, or None when the cache cannot say (an error is answered)."""
        try:
            return self.freshness()
        except Exception:  # the error being answered matters more than freshness
            logger.debug("freshness unavailable for an error answer", exc_info=True)
            return None

    def note_contact(self, *, reachable: bool) -> None:
        """Remember whether the node answered a call made outside a sync (a write)."""
        with self._lock:
            self._contact = (utc_now(), reachable)

    # -- syncs -------------------------------------------------------------------

    def is_sync_running(self) -> bool:
        """Return whether any sync (scheduled, on demand or from the CLI) holds the cache."""
        if self._sync_guard.locked():
            return True
        return not self._probe_sync_lock()

    def start_sync(self) -> None:
        """
        Start one sync in a background thread and return at once.

        Raises:
            UpstreamUnavailableError: the server runs with ``--offline``.
            CacheBusyError: a sync is running already.
        """
        if self.settings.offline:
            raise UpstreamUnavailableError(
                "a sync needs the node, and serve runs with --offline"
            )
        if not self._sync_guard.acquire(blocking=False):
            raise CacheBusyError(
                "a sync started through the API is still running; "
                "GET /v1/status shows when it is done"
            )
        if not self._probe_sync_lock():
            self._sync_guard.release()
            raise CacheBusyError(
                "a sync is already running on this cache (scheduled or from the "
                "command line); try again when it finishes"
            )
        thread = threading.Thread(target=self._run_sync, name="vx-api-sync")
        thread.start()

    def _probe_sync_lock(self) -> bool:
        probe = sync_lock(self.settings)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return False
        probe.release()
        return True

    def _run_sync(self) -> None:
        try:
            sync_once(self.settings, trigger="api", after_sync=self.after_sync)
        finally:
            self._sync_guard.release()

    def after_sync(self, summary: SyncSummary) -> None:
        """Bring the query replica up to the cache after a sync."""
        try:
            refresh_replica(self.settings.cache.db_path)
        except Exception:  # a stale replica refreshes on the next query; keep serving
            logger.exception("replica refresh failed after sync_id=%d", summary.sync_id)


def get_context(request: Request) -> ApiContext:
    """Return the app's context (a FastAPI dependency)."""
    context: ApiContext = request.app.state.vxcache
    return context


Context = Annotated[ApiContext, Depends(get_context)]
