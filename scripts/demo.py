"""
`make demo`: the main job end to end against the bundled devnode, then offline.

Starts a seeded devnode on a free port, syncs a fresh cache in a temporary
folder, shows the status and two sample queries, stops the node, reads the
cache offline, and cleans up.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

VXCACHE = [sys.executable, "-m", "vxcache"]
TOKEN = "demo-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, env: dict[str, str]) -> None:
    print(f"\n$ vxcache {shlex.join(args)}", flush=True)
    subprocess.run([*VXCACHE, *args], env=env, check=True)


def wait_for(url: str, deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"devnode did not start at {url}")


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="vxcache-demo-") as folder:
        env = {
            **os.environ,
            "VXCACHE_NODE_URL": url,
            "VXCACHE_TOKEN": TOKEN,
            "VXCACHE_DB": str(Path(folder) / "cache.db"),
            "VXCACHE_CONFIG": str(Path(folder) / "config.toml"),
        }
        print(f"$ vxcache devnode --port {port} --sessions 2000 --window 200 --seed 1")
        node = subprocess.Popen(
            [
                *VXCACHE,
                "devnode",
                "--port",
                str(port),
                "--sessions",
                "2000",
                "--window",
                "200",
                "--seed",
                "1",
                "--token",
                TOKEN,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"{url}/_admin/settings")
            run("init", env=env)
            run("sync", env=env)
            run("status", env=env)
            run(
                "query",
                "SELECT status, count(*) AS sessions FROM sessions "
                "GROUP BY status ORDER BY sessions DESC",
                env=env,
            )
            run("report", "failure-rate", env=env)
        finally:
            node.terminate()
            node.wait(timeout=10)
        print("\n# the node is stopped now; reads keep working from the cache")
        run("sessions", "list", "--limit", "5", env=env)
        run("query", "SELECT count(*) AS versions FROM session_history", env=env)
    print("\ndemo finished; its temporary cache was removed")


if __name__ == "__main__":
    main()
