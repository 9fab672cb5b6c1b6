"""Shared fixtures: a served devnode, a migrated store, settings pointing at both."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from vxcache.config import Settings, load_settings
from vxcache.devnode import DevnodeConfig, create_app

TOKEN = "test-node-token-5f2c9a"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(
        self, app: Any, *, port: int | None = None, lifespan: str = "off"
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=lifespan,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class Devnode:
    """A running devnode and the handles tests use to steer it."""

    served: ServedApp
    token: str
    state: Any

    @property
    def url(self) -> str:
        return self.served.url

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.url}/_admin/{path}", timeout=10, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def requests(self) -> dict[str, int]:
        return dict(self.admin("GET", "requests"))

    def stop(self) -> None:
        self.served.stop()


DevnodeFactory = Callable[..., Devnode]


@pytest.fixture
def devnode_factory() -> Iterator[DevnodeFactory]:
    """Start devnodes with chosen settings; all are stopped at teardown."""
    started: list[Devnode] = []

    def start(**overrides: Any) -> Devnode:
        options: dict[str, Any] = {
            "sessions": 300,
            "window": 100,
            "seed": 7,
            "token": TOKEN,
            "transition_seconds": 0.3,
        }
        options.update(overrides)
        config = DevnodeConfig(**options)
        app = create_app(config)
        node = Devnode(ServedApp(app).start(), config.token, app.state.devnode)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def devnode(devnode_factory: DevnodeFactory) -> Devnode:
    """A seeded devnode: 300 sessions, a list window of 100."""
    return devnode_factory()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's cache file lives."""
    return tmp_path / "cache" / "cache.db"


def make_settings(
    target: Devnode | None, db_path: Path, /, **sections: dict[str, Any]
) -> Settings:
    """Return settings for a cache at ``db_path`` against ``target``, retries kept short."""
    overrides: dict[str, dict[str, Any]] = {
        "node": {
            "retry_max_wait": "0.2s",
            "connect_timeout": "2s",
            "read_timeout": "10s",
        },
        "cache": {"path": str(db_path)},
    }
    if target is not None:
        overrides["node"].update(url=target.url, token=target.token)
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(overrides=overrides, environ={}, offline=target is None)


@pytest.fixture
def settings(devnode: Devnode, db_path: Path) -> Settings:
    """Settings for a fresh cache against the default devnode."""
    return make_settings(devnode, db_path)


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Keep tests away from the user's config, data and VXCACHE_* variables."""
    for name in list(os.environ):
        if name.startswith("VXCACHE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
