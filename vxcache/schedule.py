"""
APScheduler wiring: periodic syncs, one at a time. The jobs call :mod:`vxcache.sync`.

Example:
    >>> scheduler = build_scheduler(settings, blocking=True)
    >>> scheduler.start()  # until SIGINT or SIGTERM
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from filelock import FileLock, Timeout

from vxcache._time import utc_now
from vxcache.client import NodeClient
from vxcache.config import Settings
from vxcache.errors import SyncStoppedError, VxcacheError
from vxcache.store import Store
from vxcache.sync import SyncSummary, run_sync

logger = logging.getLogger(__name__)

SYNC_JOB_ID = "vxcache-sync"

#: Called after every scheduled sync that finished, e.g. to refresh the replica.
AfterSync = Callable[[SyncSummary], None]


def sync_once(
    settings: Settings,
    *,
    trigger: str,
    after_sync: AfterSync | None = None,
    stop: threading.Event | None = None,
) -> SyncSummary | None:
    """
    Run one sync as a job: log a failure and return None instead of raising.

    A failed sync is retried at the next tick; the job never kills the scheduler.
    A failing ``after_sync`` is logged; the summary of the sync still comes back.
    ``stop`` set ends a running sync early (see :func:`stop_scheduler`).
    """
    try:
        with Store.open(settings) as store, NodeClient(settings.node) as client:
            summary = run_sync(store, client, settings, trigger=trigger, stop=stop)
    except SyncStoppedError as exc:
        logger.warning("%s", exc)
        return None
    except VxcacheError as exc:
        logger.error("scheduled sync failed error=%s", exc)
        return None
    except Exception:
        logger.exception("scheduled sync crashed")
        return None
    logger.info("%s", summary.describe())
    if after_sync is not None:
        try:
            after_sync(summary)
        except Exception:
            # The sync itself is done and recorded; only what follows it failed.
            logger.exception("after-sync step failed sync_id=%d", summary.sync_id)

    return summary


def claim_schedule(settings: Settings) -> FileLock | None:
    """
    Take the right to sync a cache on a schedule, or return None if a process has it.

    One schedule per cache is enough: a second ``sync --every`` or ``serve``
    would only queue behind the first on the sync lock. The claim lasts until
    the returned lock is released or the process ends.
    """
    path = settings.cache.db_path
    claim = FileLock(str(path.with_name(path.name + ".schedule.lock")), mode=0o600)
    try:
        claim.acquire(timeout=0)
    except Timeout:
        return None
    return claim


def build_scheduler(
    settings: Settings,
    *,
    blocking: bool,
    interval_seconds: float | None = None,
    after_sync: AfterSync | None = None,
    first_run_at: datetime | None = None,
) -> BaseScheduler:
    """
    Return a scheduler with one sync job: never two at once, missed runs coalesced.

    The first run starts at ``first_run_at`` (default: now), later ones every
    interval with up to ``sync.jitter`` of random delay.
    """
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC")
        if blocking
        else BackgroundScheduler(timezone="UTC")
    )
    seconds = interval_seconds or settings.sync.interval
    scheduler.add_job(
        sync_once,
        trigger=IntervalTrigger(
            seconds=seconds, jitter=int(settings.sync.jitter) or None, timezone="UTC"
        ),
        kwargs={
            "settings": settings,
            "trigger": "schedule",
            "after_sync": after_sync,
            "stop": threading.Event(),
        },
        id=SYNC_JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(seconds)),
        next_run_time=first_run_at or utc_now(),
    )
    return scheduler


def stop_scheduler(scheduler: BaseScheduler) -> None:
    """
    Shut a scheduler down, ending a running sync early; return when it has ended.

    The sync stops after the answer it is handling: what it committed stays,
    the run is recorded as interrupted, and the next sync does the rest.
    """
    if not scheduler.running:
        return  # a second signal, say
    job = scheduler.get_job(SYNC_JOB_ID)
    if job is not None:
        job.kwargs["stop"].set()
    with contextlib.suppress(SchedulerNotRunningError):  # stopped meanwhile
        scheduler.shutdown(wait=True)


def stop_on_signals(scheduler: BaseScheduler) -> None:
    """Stop the scheduler (see :func:`stop_scheduler`) on SIGINT and SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.warning(
            "%s: stopping; a running sync ends after its current answer",
            signal.Signals(signum).name,
        )
        threading.Thread(target=stop_scheduler, args=(scheduler,)).start()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
