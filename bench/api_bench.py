"""
Benchmark the local API: the node's list served by vxcache against the devnode's own.

A devnode (2,000 sessions, a list window of 200) and ``vxcache serve --offline``
over a cache synced from it run in their own processes, so the load generator
here shares no interpreter with either server. Each target is called for a
fixed time by one client in sequence, then by several client threads at once
(httpx, keep-alive); the table gives requests per second and p50/p99 latency.
One report route is measured the same way, against no devnode counterpart.

Example:
    .venv/bin/python -m bench.api_bench --seconds 3 --clients 8
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from vxcache.client import NodeClient
from vxcache.config import Settings, load_settings
from vxcache.store import Store
from vxcache.sync import run_sync

TOKEN = "bench-node-token"  # noqa: S105 - a local devnode's throwaway token
API_TOKEN = "bench-api-token"  # noqa: S105 - a local server's throwaway token
ROOT = Path(__file__).resolve().parent.parent
LIST_PATH = "/api/v3/sessions/list"
REPORT_PATH = "/v1/reports/failure-rate"


@dataclass(frozen=True)
class Run:
    """One target under one load: its requests per second and latencies."""

    target: str
    mode: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(command: Sequence[str], url: str, *, env: dict[str, str]) -> Iterator[None]:
    """Run a server process until the block ends, once ``url`` answers."""
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{' '.join(command[1:4])} did not start"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def hammer(
    url: str, *, headers: dict[str, str], clients: int, seconds: float
) -> tuple[int, int, float, list[float]]:
    """Call ``url`` from ``clients`` threads for ``seconds``; return counts and latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(index: int) -> None:
        with httpx.Client(headers=headers, timeout=30) as client:
            client.get(url)  # open the connection before the clock starts
            start_gate.wait()
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                response = client.get(url)
                _ = response.content
                latencies[index].append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    errors[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [value for part in latencies for value in part]

    return len(flat), sum(errors), elapsed, flat


def measure(
    target: str, url: str, *, headers: dict[str, str], clients: int, seconds: float
) -> list[Run]:
    """Measure one target in sequence and with concurrent clients."""
    runs = []
    for mode, count in (("sequential", 1), (f"{clients} clients", clients)):
        done, errors, elapsed, latencies = hammer(
            url, headers=headers, clients=count, seconds=seconds
        )
        runs.append(Run(target, mode, done, errors, elapsed, latencies))
    return runs


def seed_cache(node_url: str, db_path: Path) -> Settings:
    """Sync a fresh cache from the devnode (list and pulls) and return its settings."""
    settings = load_settings(
        overrides={
            "node": {"url": node_url, "token": TOKEN},
            "cache": {"path": str(db_path)},
        },
        environ={},
    )
    with Store.open(settings) as store, NodeClient(settings.node) as client:
        summary = run_sync(store, client, settings)
    print(summary.describe(), file=sys.stderr)
    return settings


def print_table(runs: Sequence[Run]) -> None:
    """Print the runs and the vxcache/devnode ratios of the list route."""
    header = f"{'target':<28} {'load':<12} {'requests':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    print(header)
    print("-" * len(header))
    for run in runs:
        print(
            f"{run.target:<28} {run.mode:<12} {run.requests:>8} {run.rps:>8.0f} "
            f"{run.percentile(0.50):>7.2f} {run.percentile(0.99):>7.2f}"
            + (f"  ({run.errors} errors)" if run.errors else "")
        )
    node = {run.mode: run for run in runs if run.target.startswith("devnode")}
    ours = {run.mode: run for run in runs if run.target.startswith("vxcache list")}
    print()
    for mode, run in ours.items():
        other = node[mode]
        print(
            f"list, {mode}: vxcache/devnode req/s = {run.rps / other.rps:.2f}, "
            f"p50 ratio = {run.percentile(0.5) / other.percentile(0.5):.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="Per target and load."
    )
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith("VXCACHE_")}
    env["PYTHONPATH"] = str(ROOT)
    node_port, api_port = free_port(), free_port()
    node_url = f"http://127.0.0.1:{node_port}"
    api_url = f"http://127.0.0.1:{api_port}"
    devnode = [
        *("-m", "vxcache", "devnode", "--port", str(node_port), "--seed", "1"),
        *("--sessions", str(options.sessions), "--window", str(options.window)),
        *("--token", TOKEN),
    ]
    node_headers = {"Authorization": f"Bearer {TOKEN}"}
    api_headers = {"Authorization": f"Bearer {API_TOKEN}"}
    targets = [
        ("devnode list", node_url + LIST_PATH, node_headers),
        ("vxcache list", api_url + LIST_PATH, api_headers),
        ("vxcache report failure-rate", api_url + REPORT_PATH, api_headers),
    ]

    with tempfile.TemporaryDirectory() as folder:
        health = f"{node_url}/_admin/health"
        with server([sys.executable, *devnode], health, env=env):
            db_path = Path(folder) / "cache.db"
            seed_cache(node_url, db_path)
            config = Path(folder) / "config.toml"
            config.write_text(f'[api]\ntoken = "{API_TOKEN}"\n', encoding="utf-8")
            serve = [
                *("-m", "vxcache", "serve", "--offline", "--port", str(api_port)),
                *("--db", str(db_path), "--config", str(config)),
            ]
            with server([sys.executable, *serve], f"{api_url}/healthz", env=env):
                runs = [
                    run
                    for target, url, headers in targets
                    for run in measure(
                        target,
                        url,
                        headers=headers,
                        clients=options.clients,
                        seconds=options.seconds,
                    )
                ]

    print(
        f"{options.sessions} sessions, window {options.window}, "
        f"{options.seconds:g}s per row, keep-alive httpx clients\n"
    )
    print_table(runs)


if __name__ == "__main__":
    main()
