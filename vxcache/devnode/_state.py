"""
The live state of one devnode: settings, faults, request counters and sessions.
"""

from __future__ import annotations

import copy
import random
from typing import Annotated, Any

from fastapi import Depends, Request

from vxcache.devnode._config import NODE_ROUTES, DevnodeConfig, Faults, Settings
from vxcache.devnode._store import SessionStore
from vxcache.devnode._time import now_nanos, to_nanos


class DevnodeState:
    """
    Everything a running devnode holds; tests reach it as `app.state.devnode`.
    """

    def __init__(self, config: DevnodeConfig) -> None:
        self.config = config
        self.settings = Settings(
            window=config.window,
            rate_per_minute=config.rate_per_minute,
            transition_seconds=config.transition_seconds,
            state_bytes=config.state_bytes,
        )
        self.faults = copy.deepcopy(config.faults)
        self.request_counts = dict.fromkeys(NODE_ROUTES, 0)
        self.fault_rng = random.Random(config.seed)  # noqa: S311 - reproducible faults
        anchor = config.anchor_at
        if anchor is None:
            minute = 60 * 1_000_000_000
            anchor_nanos = now_nanos() // minute * minute
        else:
            anchor_nanos = to_nanos(anchor)
        self.store = SessionStore(
            seed=config.seed,
            count=config.sessions,
            anchor_nanos=anchor_nanos,
            settings=self.settings,
        )

    def count_request(self, route: str) -> None:
        """
        Count one request that arrived at a node route.
        """
        self.request_counts[route] += 1

    def reset(self) -> None:
        """
        Clear the faults and the request counters.
        """
        self.faults = Faults()
        self.request_counts = dict.fromkeys(NODE_ROUTES, 0)
        self.fault_rng = random.Random(self.config.seed)  # noqa: S311 - as above

    def update_settings(self, changes: dict[str, Any]) -> None:
        """
        Apply a validated subset of settings.
        """
        self.store.advance(now_nanos())
        for name, value in changes.items():
            setattr(self.settings, name, value)
        if "rate_per_minute" in changes:
            self.store.restart_arrivals(now_nanos())
        self.store.changed()


def current_state(request: Request) -> DevnodeState:
    """
    Return the devnode state of the app serving the request, moved to now.
    """
    state: DevnodeState = request.app.state.devnode
    state.store.advance(now_nanos())
    return state


State = Annotated[DevnodeState, Depends(current_state)]
