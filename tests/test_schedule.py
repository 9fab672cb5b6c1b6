"""The scheduler: one sync job on an interval, never two at once; jobs never raise."""

from __future__ import annotations

import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from conftest import Devnode, DevnodeFactory, free_port, make_settings

from vxcache.config import Settings, load_settings
from vxcache.schedule import (
    SYNC_JOB_ID,
    build_scheduler,
    claim_schedule,
    stop_on_signals,
    sync_once,
)
from vxcache.sync import SyncSummary


@pytest.fixture
def timed(db_path: Path) -> Settings:
    """Offline settings with a 90 s interval and a 5 s jitter."""
    return make_settings(None, db_path, sync={"interval": "90s", "jitter": "5s"})


@pytest.fixture
def scheduler(timed: Settings) -> BaseScheduler:
    """A background scheduler built from ``timed``, never started."""
    return build_scheduler(timed, blocking=False)


def test_scheduler_has_exactly_one_sync_job(scheduler: BaseScheduler) -> None:
    jobs = [job.id for job in scheduler.get_jobs()]

    assert jobs == [SYNC_JOB_ID]


def test_sync_job_runs_on_the_configured_interval(scheduler: BaseScheduler) -> None:
    trigger = scheduler.get_job(SYNC_JOB_ID).trigger

    assert (type(trigger), trigger.interval) == (IntervalTrigger, timedelta(seconds=90))


def test_sync_job_jitters_by_the_configured_amount(scheduler: BaseScheduler) -> None:
    trigger = scheduler.get_job(SYNC_JOB_ID).trigger

    assert trigger.jitter == 5


def test_sync_job_never_runs_twice_at_once(scheduler: BaseScheduler) -> None:
    job = scheduler.get_job(SYNC_JOB_ID)

    assert (job.max_instances, job.coalesce) == (1, True)


def test_sync_job_calls_sync_once_for_the_schedule(
    scheduler: BaseScheduler, timed: Settings
) -> None:
    job = scheduler.get_job(SYNC_JOB_ID)

    assert (job.func, job.kwargs["settings"], job.kwargs["trigger"]) == (
        sync_once,
        timed,
        "schedule",
    )


def test_interval_argument_overrides_the_setting(timed: Settings) -> None:
    scheduler = build_scheduler(timed, blocking=False, interval_seconds=30)

    interval = scheduler.get_job(SYNC_JOB_ID).trigger.interval

    assert interval == timedelta(seconds=30)


def test_first_run_is_now_by_default(timed: Settings) -> None:
    before = datetime.now(UTC)

    scheduler = build_scheduler(timed, blocking=False)

    first = scheduler.get_job(SYNC_JOB_ID).next_run_time
    assert before <= first <= datetime.now(UTC)


def test_first_run_can_be_chosen(timed: Settings) -> None:
    later = datetime(2031, 1, 1, tzinfo=UTC)

    scheduler = build_scheduler(timed, blocking=False, first_run_at=later)

    assert scheduler.get_job(SYNC_JOB_ID).next_run_time == later


@pytest.mark.parametrize(
    ("blocking", "kind"),
    [
        pytest.param(True, BlockingScheduler, id="blocking"),
        pytest.param(False, BackgroundScheduler, id="background"),
    ],
)
def test_scheduler_kind_follows_blocking(
    timed: Settings, blocking: bool, kind: type[BaseScheduler]
) -> None:
    scheduler = build_scheduler(timed, blocking=blocking)

    assert type(scheduler) is kind


# -- the job function ------------------------------------------------------------


def unreachable_settings(db_path: Path) -> Settings:
    """Settings for a node URL where nothing listens; one attempt."""
    return load_settings(
        overrides={
            "node": {
                "url": f"http://127.0.0.1:{free_port()}",
                "max_attempts": 1,
                "connect_timeout": "1s",
            },
            "cache": {"path": str(db_path)},
        },
        environ={},
    )


def test_sync_once_returns_none_when_the_node_is_down(db_path: Path) -> None:
    result = sync_once(unreachable_settings(db_path), trigger="schedule")

    assert result is None


def test_sync_once_logs_an_error_when_the_node_is_down(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="vxcache.schedule")

    sync_once(unreachable_settings(db_path), trigger="schedule")

    messages = [r.getMessage() for r in caplog.records if r.name == "vxcache.schedule"]
    assert len(messages) == 1
    assert messages[0].startswith("scheduled sync failed error=")


def test_sync_once_logs_no_traceback_for_a_known_failure(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="vxcache.schedule")

    sync_once(unreachable_settings(db_path), trigger="schedule")

    assert [r.exc_info for r in caplog.records if r.name == "vxcache.schedule"] == [
        None
    ]


@pytest.fixture
def small_node(devnode_factory: DevnodeFactory) -> Devnode:
    return devnode_factory(sessions=20, window=5)


def test_sync_once_returns_the_summary_when_the_node_is_up(
    small_node: Devnode, db_path: Path
) -> None:
    settings = make_settings(small_node, db_path, sync={"pull": False})

    summary = sync_once(settings, trigger="schedule")

    assert summary is not None
    assert (summary.outcome, summary.counts.listed, summary.counts.new) == ("ok", 5, 5)


def test_sync_once_records_the_trigger(small_node: Devnode, db_path: Path) -> None:
    settings = make_settings(small_node, db_path, sync={"pull": False})

    sync_once(settings, trigger="schedule")

    with closing(sqlite3.connect(db_path)) as connection:
        triggers = connection.execute("SELECT trigger FROM sync_runs").fetchall()
    assert triggers == [("schedule",)]


def test_sync_once_hands_the_summary_to_after_sync(
    small_node: Devnode, db_path: Path
) -> None:
    settings = make_settings(small_node, db_path, sync={"pull": False})
    handed: list[SyncSummary] = []

    summary = sync_once(settings, trigger="schedule", after_sync=handed.append)

    assert handed == [summary]


def crash(_summary: SyncSummary) -> None:
    raise RuntimeError("replica refresh exploded")


def test_sync_once_returns_the_summary_when_after_sync_crashes(
    small_node: Devnode, db_path: Path
) -> None:
    settings = make_settings(small_node, db_path, sync={"pull": False})

    result = sync_once(settings, trigger="schedule", after_sync=crash)

    assert result is not None
    assert result.outcome == "ok"


def test_sync_once_logs_a_crash_in_after_sync(
    small_node: Devnode, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(small_node, db_path, sync={"pull": False})
    caplog.set_level(logging.ERROR, logger="vxcache.schedule")

    sync_once(settings, trigger="schedule", after_sync=crash)

    logged = [
        (r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "vxcache.schedule"
    ]
    assert logged == [("after-sync step failed sync_id=1", True)]


# -- stopping on signals ---------------------------------------------------------


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[int, Callable[..., Any]]:
    """Capture the handlers stop_on_signals installs instead of installing them."""
    handlers: dict[int, Callable[..., Any]] = {}
    monkeypatch.setattr(
        signal, "signal", lambda signum, handler: handlers.update({signum: handler})
    )
    return handlers


def test_stop_on_signals_handles_sigint_and_sigterm(
    scheduler: BaseScheduler, installed: dict[int, Callable[..., Any]]
) -> None:
    stop_on_signals(scheduler)

    assert sorted(installed) == sorted([signal.SIGINT, signal.SIGTERM])


def test_signal_shuts_the_scheduler_down(
    timed: Settings, installed: dict[int, Callable[..., Any]]
) -> None:
    scheduler = build_scheduler(
        timed, blocking=False, first_run_at=datetime(2031, 1, 1, tzinfo=UTC)
    )
    scheduler.start()
    stop_on_signals(scheduler)

    installed[signal.SIGTERM](signal.SIGTERM, None)

    deadline = time.monotonic() + 10
    while scheduler.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.running is False


def test_one_process_at_a_time_may_sync_a_cache_on_a_schedule(timed: Settings) -> None:
    first = claim_schedule(timed)
    assert first is not None
    try:
        assert claim_schedule(timed) is None
    finally:
        first.release()
    again = claim_schedule(timed)

    assert again is not None
    again.release()
