"""
One sync run: list, diff, confirm the missing, pull, record. No scheduling here.

Example:
    >>> with Store.open(settings) as store, NodeClient(settings.node) as client:
    ...     summary = run_sync(store, client, settings)
    >>> summary.outcome
    'ok'
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from filelock import FileLock, Timeout

from vxcache._time import format_timestamp, utc_now
from vxcache._units import format_duration
from vxcache.client import NodeClient
from vxcache.config import Settings
from vxcache.errors import (
    AuthRejectedError,
    CacheBusyError,
    SessionNotFoundError,
    SyncStoppedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from vxcache.pulls import pull_input
from vxcache.records import SessionListing, SessionRecord
from vxcache.store import IndexEntry, ListingChanges, Store, SyncCounts
from vxcache.store._types import ChangedSession

logger = logging.getLogger(__name__)

#: Called as ``progress(phase, done, total)`` while a sync shows or pulls.
ProgressHook = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass
class SyncSummary:
    """What one sync did."""

    sync_id: int
    counts: SyncCounts
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """Return ``ok``, ``partial`` or ``failed``."""
        return self.counts.outcome or "failed"

    def shortfall(self) -> str:
        """Return what a partial sync left undone, in a few words."""
        c = self.counts
        missed = (
            [f"{c.pull_failed} of {c.pull_failed + c.pulled} pulls failed"]
            if c.pull_failed
            else []
        )
        if c.error:
            missed.append(c.error)
        return "; ".join(missed) or "nothing"

    def describe(self) -> str:
        """Return the one-line summary printed at the end of a sync."""
        c = self.counts
        return (
            f"sync {self.sync_id} {self.outcome}: listed {c.listed or 0}, new {c.new}, "
            f"changed {c.changed}, aged out {c.aged_out}, gone {c.gone}, "
            f"pulled {c.pulled}"
            + (f" ({c.pull_failed} failed)" if c.pull_failed else "")
            + f", {self.seconds:.1f}s"
        )


def sync_lock(settings: Settings) -> FileLock:
    """Return the lock that keeps one sync at a time on a cache."""
    path = settings.cache.db_path
    return FileLock(str(path.with_name(path.name + ".sync.lock")), mode=0o600)


def run_sync(
    store: Store,
    client: NodeClient,
    settings: Settings,
    *,
    trigger: str = "cli",
    pull: bool | None = None,
    progress: ProgressHook | None = None,
    after_list: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> SyncSummary:
    """
    Mirror the node into the cache once.

    Args:
        pull: pull artifacts of new and changed sessions; None takes the setting.
        after_list: called between reading the list and writing it (tests use
            it to make races deterministic).
        stop: once set, the sync ends after the answer it is handling, keeps
            what it committed and is recorded as interrupted.

    Raises:
        CacheBusyError: another sync held the cache past ``sync.lock_timeout``.
        UpstreamError: the list could not be read; the run is recorded as failed.
        SyncStoppedError: ``stop`` was set before the sync finished.
    """
    lock = sync_lock(settings)
    try:
        lock.acquire(timeout=settings.sync.lock_timeout)
    except Timeout:
        raise CacheBusyError(
            f"another sync is running on {settings.cache.db_path}; waited "
            f"{format_duration(settings.sync.lock_timeout)}, try again when it finishes"
        ) from None
    try:
        run = _SyncRun(
            store, client, settings, trigger=trigger, progress=progress, stop=stop
        )
        return run.execute(
            pull=settings.sync.pull if pull is None else pull, after_list=after_list
        )
    finally:
        lock.release()


class _SyncRun:
    def __init__(
        self,
        store: Store,
        client: NodeClient,
        settings: Settings,
        *,
        trigger: str,
        progress: ProgressHook | None,
        stop: threading.Event | None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.progress = progress
        self.stop = stop
        self.started = time.monotonic()
        self.counts = SyncCounts()
        self.warnings: list[str] = []
        self.sync_id = store.begin_sync(trigger=trigger, started_at=utc_now())

    def execute(
        self, *, pull: bool, after_list: Callable[[], None] | None
    ) -> SyncSummary:
        logger.info("sync started sync_id=%d", self.sync_id)
        try:
            with _collector_paused():
                missing = self._mirror_list(after_list)
            self._check_stop()
            self._confirm_missing(missing)
            if pull:
                self._check_stop()
                self._pull_wanted()
        except BaseException as exc:
            self._finish("failed", error=_describe(exc))
            raise
        self._finish(
            "partial" if self.counts.pull_failed or self.counts.error else "ok"
        )
        summary = SyncSummary(
            self.sync_id, self.counts, time.monotonic() - self.started, self.warnings
        )
        logger.info(
            "sync finished sync_id=%d outcome=%s seconds=%.1f",
            self.sync_id,
            summary.outcome,
            summary.seconds,
        )

        return summary

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise SyncStoppedError(
                f"sync {self.sync_id} stopped early; the next sync finishes it",
                run_id=self.sync_id,
            )

    def _finish(self, outcome: str, *, error: str | None = None) -> None:
        self.counts.outcome = outcome
        self.counts.finished_at = utc_now()
        if error is not None:
            self.counts.error = error
        self.store.finish_sync(self.sync_id, self.counts)

    def _mirror_list(self, after_list: Callable[[], None] | None) -> list[str]:
        # Read the cache before asking for the list: whatever is written after
        # this point (a write and its refresh) is newer than the list, and the
        # store leaves it alone when the list is written.
        read_at_seq = self.store.change_seq()
        index = self.store.session_index()
        stale = self.store.stale_since()
        listed_at = utc_now()
        known = {sid: e.wire_digest for sid, e in index.items() if e.wire_digest}
        listing = self.client.read_listing(known)
        for session_id in listing.duplicates:
            logger.warning(
                "duplicate session in list session=%s; first kept", session_id
            )
        if after_list is not None:
            after_list()
        listed_ids = listing.session_ids()
        self._check_gap(index, listing, listed_ids)

        changes = _diff(listing, index, stale, listed_at)
        with_pull = self.store.pull_basis(c.record.session_id for c in changes.changed)
        changes.changed = [
            _with_pull_flag(change, with_pull.get(change.record.session_id))
            for change in changes.changed
        ]
        overtaken = self.store.apply_listing(
            changes,
            sync_id=self.sync_id,
            observed_at=listed_at,
            read_at_seq=read_at_seq,
        )
        if overtaken:
            logger.info(
                "sessions written during the list left alone count=%d", len(overtaken)
            )
            changes = changes.without(overtaken)

        self.counts.listed_at = listed_at
        self.counts.listed = len(listing)
        self.counts.new = len(changes.new)
        self.counts.changed = len(changes.changed)
        self.counts.unchanged = len(listing) - len(changes.new) - len(changes.changed)

        return [
            sid
            for sid, entry in index.items()
            if entry.presence == "listed" and sid not in listed_ids
        ]

    def _check_gap(
        self,
        index: dict[str, IndexEntry],
        listing: SessionListing,
        listed_ids: set[str],
    ) -> None:
        previous = {sid for sid, entry in index.items() if entry.presence == "listed"}
        if previous and not listed_ids:
            warning = (
                f"the node listed no sessions, where the previous list had "
                f"{len(previous)}; each is asked about with show before it counts "
                "as aged out or gone"
            )
            self.warnings.append(warning)
            logger.warning("%s", warning)
            return
        earlier: dict[str, datetime | None] | None = None
        if not previous and listed_ids:
            # The latest list was empty: compare with the latest one that was not.
            earlier = self.store.last_nonempty_list()
            previous = set(earlier)
        if not previous or not listed_ids or not previous.isdisjoint(listed_ids):
            return
        starts = [r.started_at for r in listing.records if r.started_at is not None]
        # Unparsed sessions are as the cache has them, start included.
        starts.extend(self.store.started_at_of(listing.unchanged))
        if earlier is None:
            self.counts.gap_from = self.store.newest_listed_start()
        else:
            known = [start for start in earlier.values() if start is not None]
            self.counts.gap_from = max(known, default=None)
        self.counts.gap_to = min(starts) if starts else None
        warning = (
            "the node's list shares no session with the previous one, so sessions "
            f"started between {format_timestamp(self.counts.gap_from) or 'the last sync'} "
            f"and {format_timestamp(self.counts.gap_to) or 'now'} may be missing; "
            f"sync more often{self._since_last_list()} "
            f"(sync.interval is {format_duration(self.settings.sync.interval)})"
        )
        self.warnings.append(warning)
        logger.warning("%s", warning)

    def _since_last_list(self) -> str:
        last = self.store.freshness().last_success_at
        if last is None:
            return ""
        return (
            f": the previous list was read {format_duration(_seconds_since(last))} ago"
        )

    def _confirm_missing(self, missing: list[str]) -> None:
        recheck = self.store.recheck_candidates(self.settings.sync.recheck_per_sync)
        asked = set(missing)
        candidates = missing + [sid for sid in recheck if sid not in asked]
        if not candidates:
            return
        observed_at = utc_now()
        index = self.store.session_index()
        aged_out: list[tuple[SessionRecord, ChangedSession | None]] = []
        gone: list[str] = []
        unreachable = 0
        for session_id, outcome in self._in_parallel(
            "show", candidates, self.client.show_session
        ):
            if isinstance(outcome, SessionRecord):
                aged_out.append((outcome, _change_of(outcome, index.get(session_id))))
            elif isinstance(outcome, SessionNotFoundError):
                gone.append(session_id)
            else:
                unreachable += 1
        basis = self.store.pull_basis(c.record.session_id for _r, c in aged_out if c)
        aged_out = [
            (
                record,
                _with_pull_flag(change, basis.get(record.session_id))
                if change
                else None,
            )
            for record, change in aged_out
        ]
        self.store.apply_observations(
            sync_id=self.sync_id, observed_at=observed_at, aged_out=aged_out, gone=gone
        )
        self.counts.aged_out = sum(
            1
            for record, _c in aged_out
            if index[record.session_id].presence != "aged_out"
        )
        self.counts.gone = sum(1 for sid in gone if index[sid].presence != "gone")
        if unreachable:
            self.counts.error = (
                f"the node did not answer about {unreachable} missing sessions"
            )

    def _pull_wanted(self) -> None:
        wanted = self.store.sessions_wanting_pull()
        for session_id, outcome in self._in_parallel(
            "pull", wanted, self.client.pull_session
        ):
            if isinstance(outcome, SessionNotFoundError):
                self.store.skip_pull(session_id)
                self.counts.pull_failed += 1
            elif isinstance(outcome, UpstreamError):
                self.counts.pull_failed += 1
            else:
                prepared = pull_input(
                    outcome, store_sensitive=self.settings.cache.store_sensitive
                )
                self.store.save_pull(prepared, sync_id=self.sync_id)
                self.counts.pulled += 1

    def _in_parallel(
        self, phase: str, session_ids: Sequence[str], call: Callable[[str], T]
    ) -> Iterable[tuple[str, T | UpstreamError]]:
        """Yield each session's answer, or its upstream error, as they complete."""
        total = len(session_ids)
        if not total:
            return
        workers = self.settings.sync.pull_concurrency
        executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"vx-{phase}"
        )
        failed: list[tuple[str, UpstreamError]] = []
        in_a_row = 0  # failures no other session's request would escape
        gave_up = False
        try:
            futures: dict[Future[T], str] = {
                executor.submit(call, session_id): session_id
                for session_id in session_ids
            }
            for done, future in enumerate(as_completed(futures), start=1):
                session_id = futures[future]
                try:
                    yield session_id, future.result()
                    in_a_row = 0
                except UpstreamError as exc:
                    logger.info("%s failed session=%s error=%s", phase, session_id, exc)
                    failed.append((session_id, exc))
                    in_a_row += isinstance(exc, _NODE_WIDE_FAILURES)
                    yield session_id, exc
                except CancelledError:  # not sent: given up on below
                    yield (
                        session_id,
                        UpstreamUnavailableError(
                            f"not asked: the node had failed the {phase}s before it"
                        ),
                    )
                if self.progress is not None:
                    self.progress(phase, done, total)
                self._check_stop()
                if not gave_up and in_a_row >= _GIVE_UP_AFTER:
                    _give_up(phase, futures, failed[-1][1])
                    gave_up = True
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if failed:
            # One line for the lot: a node that fails every pull would
            # otherwise print one per session.
            first_id, first_error = failed[0]
            logger.warning(
                "%s failed for %d of %d sessions, first session=%s error=%s",
                phase, len(failed), total, first_id, first_error,
            )  # fmt: skip


# After this many failures in a row that say the node as a whole is away
# (unreachable, timing out, 5xx after retries, the token refused), a phase
# stops asking: each further request would only wait out its own retries.
_GIVE_UP_AFTER: Final = 8
_NODE_WIDE_FAILURES: Final = (UpstreamUnavailableError, AuthRejectedError)


def _give_up(phase: str, futures: Iterable[Future[Any]], last: UpstreamError) -> None:
    """Cancel the requests of a phase not yet sent, and say so."""
    cancelled = sum(future.cancel() for future in futures)
    logger.warning(
        "%s: the node failed %d requests in a row (%s); %d sessions are left "
        "for the next sync",
        phase, _GIVE_UP_AFTER, last, cancelled,
    )  # fmt: skip


@contextmanager
def _collector_paused() -> Iterator[None]:
    """
    Pause the cyclic garbage collector while a list is mirrored.

    A list of 100,000 sessions allocates a million objects, none in a cycle;
    the collector ran over them hundreds of times, a sixth of a full sync.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _seconds_since(moment: datetime) -> float:
    return (utc_now() - moment).total_seconds()


def _diff(
    listing: SessionListing,
    index: dict[str, IndexEntry],
    stale: dict[str, datetime],
    listed_at: datetime,
) -> ListingChanges:
    """Return what the list changes, leaving alone what a later write changed."""
    changes = ListingChanges()
    for record in listing.records:
        entry = index.get(record.session_id)
        if entry is None:
            changes.new.append(record)
        elif _note_listed(changes, record.session_id, entry, stale, listed_at):
            if record.fingerprint != entry.fingerprint:
                changes.changed.append(
                    ChangedSession(record, entry.version + 1, wants_pull=False)
                )
            elif entry.wire_digest is None and record.wire_digest is not None:
                changes.digests.append(record)
    for session_id in listing.unchanged:
        _note_listed(changes, session_id, index[session_id], stale, listed_at)

    return changes


def _note_listed(
    changes: ListingChanges,
    session_id: str,
    entry: IndexEntry,
    stale: dict[str, datetime],
    listed_at: datetime,
) -> bool:
    """Note a cached session's presence in the list; False when a later write wins."""
    stale_since = stale.get(session_id)
    if stale_since is not None:
        if stale_since >= listed_at:
            # A write landed after this list was requested: the list is older
            # than what the write did, so it must not overwrite or clear it.
            return False
        changes.refreshed.append(session_id)
    if entry.presence != "listed":
        changes.relisted.append(session_id)

    return True


def _change_of(
    record: SessionRecord, entry: IndexEntry | None
) -> ChangedSession | None:
    if entry is None or record.fingerprint == entry.fingerprint:
        return None
    return ChangedSession(record, entry.version + 1, wants_pull=False)


def _with_pull_flag(
    change: ChangedSession, basis: tuple[str, datetime | None] | None
) -> ChangedSession:
    record = change.record
    wants = basis is None or basis != (record.status, record.ended_at)
    return ChangedSession(record, change.version, wants_pull=wants)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt | SyncStoppedError):
        return "interrupted"
    return str(exc) or type(exc).__name__


def refresh_session(store: Store, client: NodeClient, session_id: str) -> bool:
    """
    Read one session fresh from the node and store what changed.

    Returns whether the cached session is fresh now (not stale). A session the
    node no longer knows is marked gone.

    Raises:
        UpstreamError: the node could not be asked; the cache is left as it was.
    """
    fetched_at = utc_now()
    try:
        record = client.show_session(session_id)
    except SessionNotFoundError:
        store.apply_observations(
            sync_id=None, observed_at=fetched_at, aged_out=[], gone=[session_id]
        )
        raise
    entry = store.session_index_of(session_id)
    if entry is None:
        # Known to the node but never listed: mirror it as an aged-out session.
        store.apply_listing(
            ListingChanges(new=[record]), sync_id=None, observed_at=fetched_at
        )
        store.apply_observations(
            sync_id=None, observed_at=fetched_at, aged_out=[(record, None)], gone=[]
        )
        return True
    change = _change_of(record, entry)
    if change is not None:
        basis = store.pull_basis([session_id]).get(session_id)
        change = _with_pull_flag(change, basis)

    return store.apply_refresh(
        record, change, fetched_at=fetched_at, observed_at=utc_now()
    )
