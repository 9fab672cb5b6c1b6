"""
Benchmark the list mirror of a sync against the minimal baseline in ``bench.baseline``.

For each size a devnode lists every one of its sessions (``window`` equals
``sessions``). Three scenarios run in order on one cache: a full sync into an
empty cache (migrated, as ``vxcache init`` leaves it), an immediate re-sync with
nothing changed, and a re-sync after 1% of the sessions changed status. Pulls
are off.

Each sync, vxcache's and the baseline's, runs in a fresh subprocess so its peak
RSS is its own; wall time covers opening the cache and the sync, not
interpreter start or imports. Each runs ``--repeat`` times from the same
starting cache, alternating with the other, and the fastest attempt counts.
The subprocesses put the caller's PYTHONPATH first, so pointing it at another
checkout measures that vxcache against the same baseline.

Example:
    .venv/bin/python -m bench.sync_bench --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

from vxcache.devnode import DevnodeConfig, create_app

TOKEN = "bench-node-token"  # noqa: S105 - a local devnode's throwaway token
ROOT = Path(__file__).resolve().parent.parent

# The targets: a full sync within 3x the baseline's time and under 500 MB; a
# re-sync with nothing changed writes nothing and stays within 1.5x; a re-sync
# after 1% changed writes those 1% (within a tenth).
FULL_MAX_RATIO = 3.0
FULL_MAX_RSS_MB = 500.0
UNCHANGED_MAX_RATIO = 1.5


@dataclass(frozen=True)
class Measure:
    """One sync in its own process: wall time, peak RSS and the rows it wrote."""

    seconds: float
    rss_mb: float
    sessions_written: int
    history_added: int


@dataclass(frozen=True)
class Result:
    """One scenario at one size, for vxcache and the baseline."""

    size: int
    scenario: str
    changed: int
    vxcache: Measure
    baseline: Measure

    @property
    def time_ratio(self) -> float:
        return self.vxcache.seconds / self.baseline.seconds

    @property
    def rss_ratio(self) -> float:
        return self.vxcache.rss_mb / self.baseline.rss_mb

    def verdict(self) -> str:
        """Return ``ok`` or what missed its target."""
        misses = []
        if self.scenario == "full":
            if self.time_ratio > FULL_MAX_RATIO:
                misses.append(f"time>{FULL_MAX_RATIO:g}x")
            if self.vxcache.rss_mb > FULL_MAX_RSS_MB:
                misses.append(f"rss>{FULL_MAX_RSS_MB:g}MB")
        elif self.scenario == "no change":
            if self.vxcache.sessions_written:
                misses.append("rows written")
            if self.time_ratio > UNCHANGED_MAX_RATIO:
                misses.append(f"time>{UNCHANGED_MAX_RATIO:g}x")
        elif abs(self.vxcache.sessions_written - self.changed) > self.changed // 10:
            misses.append(f"rows!={self.changed}")

        return "MISS " + ",".join(misses) if misses else "ok"


class ServedDevnode:
    """A devnode served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, size: int) -> None:
        config = DevnodeConfig(sessions=size, window=size, seed=1, token=TOKEN)
        self.app = create_app(config)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        server_config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(server_config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServedDevnode:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the devnode did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def list_items(self) -> list[dict[str, Any]]:
        """Render the list body now, so no sync pays for it, and return its items."""
        items: list[dict[str, Any]] = orjson.loads(
            self.app.state.devnode.store.list_body()
        )
        return items

    def change_statuses(self, items: Sequence[dict[str, Any]], count: int) -> None:
        """Give ``count`` sessions, picked with a fixed seed, another status."""
        picked = random.Random(len(items)).sample(list(items), count)
        with httpx.Client(base_url=f"{self.url}/_admin", timeout=30) as admin:
            for item in picked:
                status = "succeeded" if item["status"] == "failed" else "failed"
                response = admin.patch(
                    f"/sessions/{item['session_id']}", json={"status": status}
                )
                response.raise_for_status()


def run_child(kind: str, url: str, db_path: Path) -> tuple[float, float]:
    """Run one sync in a fresh interpreter; return its wall seconds and peak RSS in MB."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("VXCACHE_")
    }
    paths = [os.environ.get("PYTHONPATH", ""), str(ROOT)]
    env.update(
        BENCH_NODE_TOKEN=TOKEN,
        PYTHONPATH=os.pathsep.join(path for path in paths if path),
        XDG_CONFIG_HOME=str(db_path.parent / "xdg-config"),
    )
    command = [sys.executable, "-m", "bench.sync_bench", "--child", kind, "--url", url]
    completed = subprocess.run(
        [*command, "--db", str(db_path)],
        env=env,
        # Not ROOT: `-m` puts the working folder first on sys.path, ahead of
        # PYTHONPATH, and ROOT would then always supply this checkout's vxcache.
        cwd=db_path.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the {kind} sync failed:\n{completed.stderr}")
    answer = json.loads(completed.stdout.splitlines()[-1])

    return float(answer["seconds"]), float(answer["rss_mb"])


def count(db_path: Path, sql: str, *params: object) -> int:
    """Return the number one query counts, or 0 while its table does not exist."""
    if not db_path.exists():
        return 0
    with closing(sqlite3.connect(db_path)) as db:
        try:
            return int(db.execute(sql, params).fetchone()[0])
        except sqlite3.OperationalError:
            return 0


class Cache:
    """One cache file, its row counters, and a copy to restart each attempt from."""

    def __init__(self, kind: str, db_path: Path) -> None:
        self.kind = kind
        self.db_path = db_path
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._start = db_path.with_name(db_path.name + ".start")
        self._has_start = False
        self._counts = (0, 0)

    def keep_start(self) -> None:
        """Remember the cache as it is now; every attempt of a scenario starts from it."""
        self._counts = self._count()
        self._has_start = self.db_path.exists()
        if self._has_start:
            with closing(sqlite3.connect(self.db_path)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(self.db_path, self._start)

    def sync(self, url: str, *, is_first: bool) -> tuple[float, float]:
        """Sync once from the kept start; return wall seconds and peak RSS in MB."""
        if not is_first:
            for suffix in ("", "-wal", "-shm"):
                self.db_path.with_name(self.db_path.name + suffix).unlink(
                    missing_ok=True
                )
            if self._has_start:
                shutil.copyfile(self._start, self.db_path)
        return run_child(self.kind, url, self.db_path)

    def written(self) -> tuple[int, int]:
        """Return the session rows written and the history rows added since the start."""
        last_seq, history = self._counts
        if self.kind == "baseline":
            added = count(self.db_path, "SELECT count(*) FROM history") - history
            return added, added
        sql = "SELECT count(*) FROM sessions WHERE change_seq > ?"
        added = count(self.db_path, "SELECT count(*) FROM session_history") - history
        return count(self.db_path, sql, last_seq), added

    def _count(self) -> tuple[int, int]:
        if self.kind == "baseline":
            return 0, count(self.db_path, "SELECT count(*) FROM history")
        last_seq = count(self.db_path, "SELECT seq FROM _vxcache_changes")
        return last_seq, count(self.db_path, "SELECT count(*) FROM session_history")


def measure(caches: Sequence[Cache], url: str, *, repeat: int) -> list[Measure]:
    """
    Sync each cache ``repeat`` times from its kept start, alternating between them.

    The fastest attempt counts (the others met a busier machine); peak RSS is
    the highest seen, so no attempt's memory is hidden.
    """
    for cache in caches:
        cache.keep_start()
    attempts: list[list[tuple[float, float]]] = [[] for _ in caches]
    for attempt in range(repeat):
        for cache, runs in zip(caches, attempts, strict=True):
            runs.append(cache.sync(url, is_first=attempt == 0))

    measures = []
    for cache, runs in zip(caches, attempts, strict=True):
        seconds = min(run[0] for run in runs)
        rss_mb = max(run[1] for run in runs)
        measures.append(Measure(seconds, rss_mb, *cache.written()))

    return measures


def create_empty_cache(db_path: Path) -> None:
    """Create the cache as `vxcache init` leaves it: migrated, without sessions."""
    from vxcache.store import Store

    with Store(db_path) as store:
        store.upgrade()


def bench_size(
    size: int, *, changed_fraction: float, repeat: int, folder: Path
) -> list[Result]:
    """Run the three scenarios against one devnode of ``size`` listed sessions."""
    caches = (
        Cache("vxcache", folder / f"vxcache-{size}" / "cache.db"),
        Cache("baseline", folder / f"baseline-{size}" / "baseline.db"),
    )
    changed = max(1, round(size * changed_fraction))
    create_empty_cache(caches[0].db_path)
    results = []
    with ServedDevnode(size) as node:
        items = node.list_items()
        for scenario in ("full", "no change", f"{changed_fraction:.0%} changed"):
            if scenario.endswith("changed"):
                node.change_statuses(items, changed)
                node.list_items()
            vxcache, baseline = measure(caches, node.url, repeat=repeat)
            results.append(Result(size, scenario, changed, vxcache, baseline))
            print(f"  {size:,} {scenario}: done", file=sys.stderr, flush=True)

    return results


def format_table(results: Sequence[Result]) -> str:
    """Return the results as a plain-text table with aligned columns."""
    headers = (
        "sessions", "scenario", "vx s", "base s", "time x", "vx ses/s",
        "vx rows ses/hist", "base rows", "vx MB", "base MB", "rss x", "target",
    )  # fmt: skip
    rows = [
        (
            f"{r.size:,}",
            r.scenario,
            f"{r.vxcache.seconds:.2f}",
            f"{r.baseline.seconds:.2f}",
            f"{r.time_ratio:.2f}",
            f"{r.size / r.vxcache.seconds:,.0f}",
            f"{r.vxcache.sessions_written}/{r.vxcache.history_added}",
            f"{r.baseline.history_added}",
            f"{r.vxcache.rss_mb:.0f}",
            f"{r.baseline.rss_mb:.0f}",
            f"{r.rss_ratio:.2f}",
            r.verdict(),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    left = {1, len(headers) - 1}

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _child(kind: str, url: str, db_path: Path) -> None:
    token = os.environ["BENCH_NODE_TOKEN"]
    if kind == "baseline":
        from bench.baseline import sync_baseline

        started = time.perf_counter()
        sync_baseline(url, token, db_path)
    else:
        from vxcache.client import NodeClient
        from vxcache.config import load_settings
        from vxcache.store import Store
        from vxcache.sync import run_sync

        overrides = {
            "node": {"url": url, "token": token, "read_timeout": "120s"},
            "cache": {"path": str(db_path)},
        }
        settings = load_settings(overrides=overrides, environ={})
        started = time.perf_counter()
        with Store.open(settings) as store, NodeClient(settings.node) as client:
            run_sync(store, client, settings, trigger="bench", pull=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """Return this process's peak RSS in MB since it was started (or exec'd)."""
    # Linux carries ru_maxrss across fork and exec, so a child started by a big
    # parent would report the parent's peak; VmHWM belongs to this image alone.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sync benchmark and print its table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="listed sessions, comma-separated"
    )
    parser.add_argument("--changed", type=float, default=0.01, help="fraction changed")
    parser.add_argument(
        "--repeat", type=int, default=3, help="attempts per sync; best counts"
    )
    parser.add_argument(
        "--child", choices=("vxcache", "baseline"), help=argparse.SUPPRESS
    )
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.url, args.db)
        return 0

    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"sync benchmark: sizes {sizes}, pulls off", file=sys.stderr, flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="vxcache-bench-") as folder:
        for size in sizes:
            results.extend(
                bench_size(
                    size,
                    changed_fraction=args.changed,
                    repeat=args.repeat,
                    folder=Path(folder),
                )
            )
    print("sync: vxcache (vx) against the baseline (base); x = vx/base")
    print(format_table(results))
    print(
        "vx rows ses/hist: session rows whose change_seq moved / history rows added; "
        "base rows: rows its trigger copied to history"
    )

    return 0


if __name__ == "__main__":
    sys.exit(main())
