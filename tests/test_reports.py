"""The report library: built-in reports give the right numbers on a hand-made cache."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_settings
from test_query import NOW, CacheBuilder, record

from vxcache.config import Settings
from vxcache.errors import RecordNotFoundError, UsageError
from vxcache.query.reports import list_reports, parse_report, run_report
from vxcache.records import SessionRecord

NOON = NOW.replace(hour=12, minute=0, second=0)
REQUIRED = {
    "activity", "failure-rate", "durations", "hosts", "users", "long-running",
    "vanished", "writes", "resources", "sync-health",
}  # fmt: skip


def ended(
    session_id: str, status: str, *, days_ago: int, minutes: int, **fields: str
) -> SessionRecord:
    """Return a settled session that started ``days_ago`` at noon and ran ``minutes``."""
    started = NOON - timedelta(days=days_ago)
    return record(
        session_id,
        status,
        started_at=started,
        ended_at=started + timedelta(minutes=minutes),
        **fields,
    )


SESSIONS = [
    ended("d1", "succeeded", days_ago=1, minutes=10),
    ended("d2", "failed", days_ago=1, minutes=20),
    ended("d3", "cancelled", days_ago=2, minutes=5),
    record("d4", "running", started_at=NOW - timedelta(hours=8)),
    record("q1", "queued", script="etl", hostname="web-2", username="carol",
           started_at=NOW - timedelta(hours=2)),
    ended("b1", "succeeded", days_ago=3, minutes=60, script="backup",
          hostname="db-1", username="bob"),
    ended("b2", "succeeded", days_ago=3, minutes=120, script="backup",
          hostname="db-1", username="bob"),
    ended("m1", "timed_out", days_ago=100, minutes=30, script="migrate",
          hostname="db-1", username="bob"),
]  # fmt: skip
SYNC_1, SYNC_2, SYNC_3 = NOW - timedelta(hours=2), NOW - timedelta(hours=1), NOW


@pytest.fixture
def small(db_path: Path) -> Iterator[CacheBuilder]:
    """Three syncs over eight sessions, two writes and three pulls."""
    cache = CacheBuilder(db_path)
    cache.sync(SYNC_1, new=SESSIONS)
    cache.sync(SYNC_2, aged_out=[SESSIONS[5]], gone=["m1"])
    cache.sync(SYNC_3, outcome="failed", error="node down")
    cache.write("d2", at=NOW - timedelta(minutes=30), outcome="failed", actor="alice")
    cache.write("d1", at=NOW - timedelta(minutes=10), actor="carol")
    old = [("aws_instance", "web"), ("aws_s3_bucket", "logs")]
    cache.pull("d1", at=SYNC_1, resources=old)
    cache.pull(
        "d1", at=SYNC_2, resources=[("aws_instance", "web"), ("aws_instance", "api")]
    )
    cache.pull("b1", at=SYNC_1, resources=[("aws_instance", "db")])
    yield cache
    cache.close()


@pytest.fixture
def offline(db_path: Path) -> Settings:
    """Offline settings for the cache at ``db_path``."""
    return make_settings(None, db_path)


def rows(settings: Settings, name: str, **params: str) -> list[tuple[object, ...]]:
    """Return a report's rows."""
    return run_report(settings, name, params).rows


def test_every_report_is_listed_with_a_title_and_parameters(offline: Settings) -> None:
    reports = {report.name: report for report in list_reports(offline)}

    assert set(reports) == REQUIRED
    assert all(report.title and report.description for report in reports.values())
    assert [p.name for p in reports["long-running"].params] == ["hours"]
    assert reports["activity"].params[0].default == "90"
    assert all(report.is_builtin for report in reports.values())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_report_runs_on_its_defaults(
    small: CacheBuilder, offline: Settings, name: str
) -> None:
    result = run_report(offline, name)

    assert result.columns
    assert result.as_of_seq == small.store.change_seq()


def test_activity_counts_sessions_per_day_by_status(
    small: CacheBuilder, offline: Settings
) -> None:
    window_start = NOW.date() - timedelta(days=89)
    expected = Counter(
        (s.started_at.date(), s.status)
        for s in SESSIONS
        if s.started_at is not None and s.started_at.date() >= window_start
    )

    result = rows(offline, "activity")

    assert {(day, status): n for day, status, n in result} == expected
    assert sum(n for *_, n in rows(offline, "activity", days="365")) == len(SESSIONS)


def test_failure_rate_is_failures_over_settled_sessions(
    small: CacheBuilder, offline: Settings
) -> None:
    result = run_report(offline, "failure-rate").as_dicts()

    by_script = {row["script"]: row for row in result}
    assert set(by_script) == {"deploy", "backup"}
    assert (by_script["deploy"]["settled"], by_script["deploy"]["failures"]) == (3, 1)
    assert by_script["deploy"]["failure_rate"] == pytest.approx(1 / 3)
    assert by_script["deploy"]["cancelled"] == 1
    assert by_script["backup"]["failure_rate"] == 0
    assert run_report(offline, "failure-rate", {"days": "365"}).as_dicts()[0] == {
        "script": "migrate", "settled": 1, "failures": 1, "failure_rate": 1.0, "cancelled": 0,
    }  # fmt: skip


def test_durations_are_percentiles_per_script(
    small: CacheBuilder, offline: Settings
) -> None:
    result = {row[0]: row[1:] for row in rows(offline, "durations")}

    assert result["deploy"] == pytest.approx((3, 600.0, 1140.0, 1188.0, 1200.0))
    assert result["backup"] == pytest.approx((2, 5400.0, 7020.0, 7164.0, 7200.0))


def test_hosts_count_sessions_per_week(small: CacheBuilder, offline: Settings) -> None:
    def monday(day: date) -> date:
        return day - timedelta(days=day.weekday())

    first_week = monday(NOW.date()) - timedelta(weeks=11)
    expected = Counter(
        (monday(s.started_at.date()), s.hostname)
        for s in SESSIONS
        if s.started_at is not None and monday(s.started_at.date()) >= first_week
    )

    result = rows(offline, "hosts")

    assert {(week, host): n for week, host, n, _failures in result} == expected


def test_users_say_what_each_user_did(small: CacheBuilder, offline: Settings) -> None:
    result = {row["username"]: row for row in run_report(offline, "users").as_dicts()}

    alice = result["alice"]
    assert (alice["sessions"], alice["succeeded"], alice["failures"]) == (4, 1, 1)
    assert (alice["cancelled"], alice["in_flight"], alice["hosts"]) == (1, 1, 1)
    assert (result["bob"]["sessions"], result["bob"]["succeeded"]) == (2, 2)
    assert (result["carol"]["sessions"], result["carol"]["in_flight"]) == (1, 1)


def test_long_running_lists_sessions_in_flight_past_the_threshold(
    small: CacheBuilder, offline: Settings
) -> None:
    default = rows(offline, "long-running")
    lower = rows(offline, "long-running", hours="1.5")

    assert [(row[0], row[6]) for row in default] == [("d4", pytest.approx(8, abs=0.2))]
    assert [row[0] for row in lower] == ["d4", "q1"]


def test_vanished_lists_aged_out_and_gone_sessions_with_when(
    small: CacheBuilder, offline: Settings
) -> None:
    result = rows(offline, "vanished")

    assert [row[:4] for row in result] == [
        ("b1", "aged_out", SYNC_2, SYNC_2),
        ("m1", "gone", SYNC_2, None),
    ]


def test_writes_show_who_did_what_and_how_it_ended(
    small: CacheBuilder, offline: Settings
) -> None:
    result = run_report(offline, "writes").as_dicts()

    assert [
        (w["actor"], w["action"], w["session_id"], w["outcome"]) for w in result
    ] == [
        ("carol", "apply", "d1", "ok"),
        ("alice", "apply", "d2", "failed"),
    ]
    assert result[0]["at"] == NOW - timedelta(minutes=10)


def test_resources_count_types_from_each_sessions_latest_pull(
    small: CacheBuilder, offline: Settings
) -> None:
    result = rows(offline, "resources")

    assert [(row[0], row[3], row[4], row[5]) for row in result] == [
        ("aws_instance", 2, 3, 3)
    ]
    assert rows(offline, "resources", mode="data") == []


def test_sync_health_shows_runs_failures_and_the_last_success(
    small: CacheBuilder, offline: Settings
) -> None:
    result = run_report(offline, "sync-health").as_dicts()

    assert len(result) == 14
    assert result[-1]["day"] == NOW.date()
    assert sum(day["runs"] for day in result) == 3
    assert sum(day["failed"] for day in result) == 1
    assert result[-1]["last_success_at"] == SYNC_2
    assert [day["last_error"] for day in result if day["last_error"]] == ["node down"]


def test_an_unknown_report_names_the_available_ones(offline: Settings) -> None:
    with pytest.raises(RecordNotFoundError, match=r"no report named 'nope'.*activity"):
        run_report(offline, "nope")


def test_an_unknown_parameter_is_a_usage_error(offline: Settings) -> None:
    with pytest.raises(
        UsageError, match="no parameter 'weeks'; its parameters are: days"
    ):
        run_report(offline, "activity", {"weeks": "3"})


def test_a_user_report_is_added_and_overrides_a_built_in(
    small: CacheBuilder, db_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "activity.sql").write_text("-- My activity\nSELECT 42 AS answer\n")
    (folder / "per-status.sql").write_text(
        "-- Sessions per status\n--\n-- One row per status.\n--\n"
        "-- param: status = failed  (the status to count)\n"
        "SELECT count(*) AS n FROM sessions WHERE status = CAST($status AS VARCHAR)\n"
    )
    settings = make_settings(None, db_path, query={"reports_dir": str(folder)})

    reports = {report.name: report for report in list_reports(settings)}

    assert reports["activity"].title == "My activity"
    assert not reports["activity"].is_builtin
    assert run_report(settings, "activity").rows == [(42,)]
    assert run_report(settings, "per-status").rows == [(1,)]
    assert run_report(settings, "per-status", {"status": "succeeded"}).rows == [(3,)]


def test_a_report_header_gives_title_description_and_parameters() -> None:
    text = (
        "-- Sessions by day\n--\n-- First line.\n-- Second line.\n--\n"
        "-- param: days = 7  (how far back)\n-- param: since = 2026-01-01 00:00\n"
        "SELECT 1\n-- not part of the header\n"
    )

    report = parse_report("by-day", text, source="x.sql", is_builtin=False)

    assert report.title == "Sessions by day"
    assert report.description == "First line.\nSecond line."
    assert [(p.name, p.default, p.meaning) for p in report.params] == [
        ("days", "7", "how far back"),
        ("since", "2026-01-01 00:00", ""),
    ]


def test_reports_use_utc_days(small: CacheBuilder, offline: Settings) -> None:
    result = rows(offline, "activity", days="1")

    assert all(day == datetime.now(UTC).date() for day, *_ in result)
