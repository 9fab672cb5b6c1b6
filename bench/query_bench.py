"""
Benchmark vxcache's analytical queries against sqlite3 and native DuckDB.

Builds a migrated cache with 100,000 sessions and 1,000,000 history rows over
180 days, then for three report queries measures: right after a sync that
changed 1% of the sessions, the replica refresh that sync ends with and
vxcache's first query; vxcache warm; the same question asked of the SQLite
file with sqlite3; and DuckDB on a native in-memory table. Also times a fresh
process answering a small query.

Run it with ``python -m bench.query_bench``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from vxcache.config import Settings, load_settings
from vxcache.query import refresh_replica, run_query
from vxcache.query._schema import MACROS
from vxcache.query.reports import list_reports
from vxcache.store import Store
from vxcache.store._engine import ensure_schema

SESSIONS = 100_000
VERSIONS = 10  # history rows per session: 1,000,000 in all
DAYS = 180
CHANGED_SHARE = 0.01
REPEATS = 5
SYNCS_PER_DAY = 96
IN_FLIGHT = ("queued", "running", "applying")
SETTLED = (
    ("succeeded", 50), ("deleted", 14), ("planned", 10), ("failed", 9),
    ("cancelled", 4), ("timed_out", 3), ("rolled_back", 3), ("delete_failed", 2),
)  # fmt: skip
FAILURES = "('failed', 'timed_out', 'rolled_back', 'delete_failed')"
NOT_SETTLED = "('queued', 'running', 'applying', 'deleting')"
WINDOW = "date('now', '-89 days')"

# The same questions in SQLite's dialect; percentiles by ordered rank.
SQLITE = {
    "activity": f"""
        SELECT date(started_at) AS day, status, count(*) AS sessions FROM sessions
        WHERE started_at >= {WINDOW} GROUP BY 1, 2 ORDER BY 1, 2""",
    "failure-rate": f"""
        SELECT coalesce(script, '(none)') AS script, count(*) AS settled,
               sum(status IN {FAILURES}) AS failures,
               1.0 * sum(status IN {FAILURES}) / count(*) AS failure_rate,
               sum(status = 'cancelled') AS cancelled
        FROM sessions WHERE status NOT IN {NOT_SETTLED} AND started_at >= {WINDOW}
        GROUP BY 1 ORDER BY failure_rate DESC, settled DESC, script""",
    "durations": f"""
        WITH d AS (
            SELECT coalesce(script, '(none)') AS script,
                   (julianday(ended_at) - julianday(started_at)) * 86400 AS s
            FROM sessions
            WHERE status NOT IN {NOT_SETTLED} AND ended_at IS NOT NULL
              AND started_at >= {WINDOW}
        ), ranked AS (
            SELECT script, s, row_number() OVER (PARTITION BY script ORDER BY s) AS n,
                   count(*) OVER (PARTITION BY script) AS total
            FROM d
        )
        SELECT script, total, min(CASE WHEN n >= 0.5 * total THEN s END) AS p50,
               min(CASE WHEN n >= 0.95 * total THEN s END) AS p95,
               min(CASE WHEN n >= 0.99 * total THEN s END) AS p99, max(s) AS max_s
        FROM ranked GROUP BY script, total ORDER BY p95 DESC""",
}


def stamp(value: datetime) -> str:
    """Return a timestamp as SQLAlchemy stores it in SQLite: naive UTC text."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def settled_status(rng: random.Random) -> str:
    return rng.choices([s for s, _ in SETTLED], weights=[w for _, w in SETTLED])[0]


def generate(db_path: Path, rng: random.Random) -> None:
    """Fill a migrated cache with synthetic sessions, history and sync runs."""
    store = Store(db_path)
    ensure_schema(store.engine)
    store.close()
    now = datetime.now(UTC).replace(tzinfo=None)
    first_day = now - timedelta(days=DAYS)
    runs = DAYS * SYNCS_PER_DAY

    with sqlite3.connect(db_path) as connection:
        connection.executemany(
            "INSERT INTO sync_runs (sync_id, trigger, started_at, listed_at, finished_at, "
            "outcome, listed, new, changed, unchanged, aged_out, gone, pulled, pull_failed, "
            "change_seq) VALUES (?, 'schedule', ?, ?, ?, ?, 500, 5, 10, 485, 1, 0, 5, 0, ?)",
            (
                (i, stamp(at), stamp(at), stamp(at + timedelta(seconds=20)),
                 "failed" if i % 97 == 0 else "ok", i)
                for i in range(1, runs + 1)
                for at in [first_day + timedelta(minutes=i * 1440 / SYNCS_PER_DAY)]
            ),
        )  # fmt: skip
        sessions, history = [], []
        for n in range(SESSIONS):
            session, versions = synthetic_session(n, first_day, rng, runs)
            sessions.append(session)
            history.extend(versions)
        connection.executemany(
            "INSERT INTO sessions (session_id, status, hostname, username, script, "
            "resource_id, started_at, ended_at, extra, fingerprint, version, first_seen_at, "
            "last_seen_at, presence, presence_changed_at, stale, stale_since, pull_wanted, "
            "last_pull_id, change_seq) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, 0, NULL, 0, NULL, ?)",
            sessions,
        )
        connection.executemany(
            "INSERT INTO session_history (session_id, version, status, hostname, username, "
            "script, resource_id, started_at, ended_at, extra, valid_from, valid_to, sync_id, "
            "observed_via, change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, "
            "'list', ?)",
            history,
        )
        connection.execute("UPDATE _vxcache_changes SET seq = ?", (runs,))


def synthetic_session(
    n: int, first_day: datetime, rng: random.Random, runs: int
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """Return one session row and its history rows, versions a few minutes apart."""
    started = first_day + timedelta(seconds=rng.uniform(0, DAYS * 86400))
    final = settled_status(rng)
    duration = timedelta(seconds=rng.lognormvariate(6.5, 0.8))
    fields = (f"host-{rng.randrange(200):03d}", f"user{rng.randrange(50)}",
              f"script-{rng.randrange(40):02d}", f"res-{n}")  # fmt: skip
    seen = min(runs, int((started - first_day).total_seconds() / 900) + 1)
    versions = []
    for version in range(1, VERSIONS + 1):
        is_last = version == VERSIONS
        valid_from = started + duration * (version - 1) / VERSIONS
        valid_to = None if is_last else started + duration * version / VERSIONS
        status = final if is_last else IN_FLIGHT[min(version - 1, 2)]
        ended = stamp(started + duration) if is_last else None
        seq = min(runs, seen + version)
        versions.append((
            f"ses_{n:07d}", version, status, *fields, stamp(started), ended,
            stamp(valid_from), valid_to and stamp(valid_to), seq, seq,
        ))  # fmt: skip
    presence = (
        "listed" if started > first_day + timedelta(days=DAYS - 2) else "aged_out"
    )
    session = (
        f"ses_{n:07d}", final, *fields, stamp(started), stamp(started + duration),
        rng.randbytes(16), VERSIONS, stamp(started), stamp(started + duration), presence,
        stamp(started), versions[-1][-1],
    )  # fmt: skip
    return session, versions


def simulate_sync(db_path: Path, rng: random.Random) -> None:
    """Change the status of 1% of the sessions in one store transaction."""
    at = stamp(datetime.now(UTC).replace(tzinfo=None))
    with sqlite3.connect(db_path) as connection:
        (seq,) = connection.execute(
            "UPDATE _vxcache_changes SET seq = seq + 1 RETURNING seq"
        ).fetchone()
        (sync_id,) = connection.execute(
            "INSERT INTO sync_runs (trigger, started_at, listed_at, finished_at, outcome, "
            "new, changed, unchanged, aged_out, gone, pulled, pull_failed, change_seq) "
            "VALUES ('schedule', ?, ?, ?, 'ok', 0, ?, 0, 0, 0, 0, 0, ?) RETURNING sync_id",
            (at, at, at, int(SESSIONS * CHANGED_SHARE), seq),
        ).fetchone()
        picked = rng.sample(range(SESSIONS), int(SESSIONS * CHANGED_SHARE))
        ids = [f"ses_{n:07d}" for n in picked]
        current = dict(
            connection.execute(
                f"SELECT session_id, version FROM sessions WHERE session_id IN "
                f"({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        )
        for session_id in ids:
            version, status = current[session_id], settled_status(rng)
            connection.execute(
                "UPDATE session_history SET valid_to = ?, change_seq = ? "
                "WHERE session_id = ? AND version = ?",
                (at, seq, session_id, version),
            )
            connection.execute(
                "INSERT INTO session_history SELECT session_id, ?, ?, hostname, username, "
                "script, resource_id, started_at, ended_at, extra, ?, NULL, ?, 'list', ? "
                "FROM session_history WHERE session_id = ? AND version = ?",
                (version + 1, status, at, sync_id, seq, session_id, version),
            )
            connection.execute(
                "UPDATE sessions SET status = ?, version = ?, change_seq = ? "
                "WHERE session_id = ?",
                (status, version + 1, seq, session_id),
            )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_of(samples: Iterator[float]) -> float:
    return statistics.median(list(samples))


def native_duckdb(settings: Settings) -> duckdb.DuckDBPyConnection:
    """Copy the public sessions relation into a native in-memory DuckDB table."""
    info = refresh_replica(settings.cache.db_path)
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"ATTACH '{info.path}' AS replica (READ_ONLY)")
    connection.execute("CREATE TABLE sessions AS FROM replica.main.sessions")
    connection.execute("DETACH replica")
    for statement in MACROS:
        connection.execute(statement)
    return connection


def small_query_process(db_path: Path) -> float:
    """Time ``vxcache query`` answering a small query in a fresh process."""
    return timed_process(
        "-m", "vxcache", "--db", str(db_path), "query", "SELECT count(*) FROM sessions"
    )


def native_query_process(db_path: Path) -> float:
    """Time a fresh Python process asking DuckDB the same of the replica file."""
    code = (
        "import sys, duckdb; c = duckdb.connect(); "
        "c.execute(f\"ATTACH '{sys.argv[1]}' AS replica (READ_ONLY)\"); "
        "c.execute('USE replica'); "
        "print(c.execute('SELECT count(*) FROM sessions').fetchall())"
    )
    return timed_process("-c", code, str(db_path.with_name("cache.db.duckdb")))


def timed_process(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    """Build the synthetic cache, run every measurement and print the table."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="vxcache-bench-") as folder:
        db_path = Path(folder) / "cache.db"
        print(
            f"generating {SESSIONS:,} sessions, {SESSIONS * VERSIONS:,} history rows..."
        )
        print(f"  generate        {timed(lambda: generate(db_path, rng)):8.2f} s")
        print(f"  initial replica {timed(lambda: refresh_replica(db_path)):8.2f} s")
        settings = load_settings(
            overrides={"cache": {"path": str(db_path)}}, environ={}, offline=True
        )
        native = native_duckdb(settings)
        reports = {r.name: r for r in list_reports(settings)}
        print_table(settings, db_path, native, reports, rng)
        noop = repeat(lambda: refresh_replica(db_path))
        print(f"\nrefresh that finds nothing new: {noop * 1e3:.1f} ms")
        process = median_of(small_query_process(db_path) for _ in range(REPEATS))
        native_process = median_of(
            native_query_process(db_path) for _ in range(REPEATS)
        )
        print(
            f"small query in a fresh process, end to end: `vxcache query` {process:.3f} s,"
            f" python -c with duckdb {native_process:.3f} s"
            f" ({process / native_process:.1f}x; target: vxcache under 1 s)"
        )
        print(f"replica file: {os.path.getsize(db_path.with_name('cache.db.duckdb')) / 1e6:.1f} MB,"
              f" cache file: {os.path.getsize(db_path) / 1e6:.1f} MB")  # fmt: skip


def repeat(action: Callable[[], object]) -> float:
    """Return the median time of a few runs of ``action``."""
    return median_of(timed(action) for _ in range(REPEATS))


def after_sync(
    db_path: Path, rng: random.Random, query: Callable[[], object]
) -> tuple[float, float]:
    """
    Return median (refresh, first query) times right after a 1% sync.

    Every vxcache sync (the command, ``serve``'s schedule, the API) refreshes
    the replica as its last step, so the refresh is timed on its own, as the
    sync would run it, and then the first query.
    """
    refreshes, firsts = [], []
    for _ in range(REPEATS):
        simulate_sync(db_path, rng)
        refreshes.append(timed(lambda: refresh_replica(db_path)))
        firsts.append(timed(query))
    return statistics.median(refreshes), statistics.median(firsts)


def print_table(
    settings: Settings,
    db_path: Path,
    native: duckdb.DuckDBPyConnection,
    reports: dict[str, Any],
    rng: random.Random,
) -> None:
    """Measure each query every way and print one row per query."""
    print(f"\ntimes in ms, medians of {REPEATS} runs after as many 1% syncs")
    print("  refresh: the replica update a sync runs before it returns")
    print("  first:   the first query after that sync; warm: the same query again")
    print(f"{'':<14}{'':>8}{'':>7}{'':>7}{'':>9}{'':>8}"
          f"{'first query':>22}{'refresh + first':>22}")  # fmt: skip
    print(f"{'query':<14}{'refresh':>8}{'first':>7}{'warm':>7}{'sqlite3':>9}"
          f"{'native':>8}{'sqlite/vx':>11}{'vx/native':>11}{'sqlite/vx':>11}"
          f"{'vx/native':>11}{'warm/native':>13}")  # fmt: skip
    lite = sqlite3.connect(db_path)
    for name, sqlite_sql in SQLITE.items():
        sql = reports[name].sql
        params = {p.name: p.default for p in reports[name].params}

        def ask_vxcache(sql: str = sql, params: dict[str, str] = params) -> object:
            return run_query(settings, sql, params=params).rows

        def ask_native(sql: str = sql, params: dict[str, str] = params) -> object:
            return native.execute(sql, params).fetchall()

        def ask_sqlite(sql: str = sqlite_sql) -> object:
            return lite.execute(sql).fetchall()

        refresh, first = after_sync(db_path, rng, ask_vxcache)
        warm, slow, fast = repeat(ask_vxcache), repeat(ask_sqlite), repeat(ask_native)
        total = refresh + first
        print(f"{name:<14}{refresh * 1e3:>8.1f}{first * 1e3:>7.1f}{warm * 1e3:>7.1f}"
              f"{slow * 1e3:>9.1f}{fast * 1e3:>8.1f}{slow / first:>10.1f}x"
              f"{first / fast:>10.1f}x{slow / total:>10.1f}x{total / fast:>10.1f}x"
              f"{warm / fast:>12.1f}x")  # fmt: skip
    lite.close()
    print("targets: sqlite/vx >= 5x, vx/native <= 2x")


if __name__ == "__main__":
    main()
