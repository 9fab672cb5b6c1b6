"""
One thread per process that interrupts queries past their time limit.

A ``threading.Timer`` per query starts a thread and waits for it to run,
which took one to two milliseconds of every query on a busy machine. The
watchdog thread is started once and sleeps until the earliest deadline.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_condition = threading.Condition()
_deadlines: list[tuple[float, int]] = []  # a heap of (deadline, ticket)
_armed: dict[int, Callable[[], None]] = {}
_tickets = itertools.count()
_thread: threading.Thread | None = None

logger = logging.getLogger(__name__)


@contextmanager
def deadline(seconds: float, action: Callable[[], None]) -> Iterator[None]:
    """
    Run ``action`` on the watchdog thread if the block lasts past ``seconds``.

    Once the block is left, ``action`` has either finished or will never run:
    it runs under the watchdog's lock, so it must be quick and never block.
    """
    global _thread
    ticket = next(_tickets)
    with _condition:
        _armed[ticket] = action
        heapq.heappush(_deadlines, (time.monotonic() + seconds, ticket))
        if _thread is None:
            _thread = threading.Thread(
                target=_watch, name="vx-query-watchdog", daemon=True
            )
            _thread.start()
        elif _deadlines[0][1] == ticket:
            _condition.notify()  # the new deadline is the nearest
    try:
        yield
    finally:
        with _condition:
            _armed.pop(ticket, None)


def _watch() -> None:
    with _condition:
        while True:
            # Deadlines of blocks already left are dropped as they come up.
            while _deadlines and _deadlines[0][1] not in _armed:
                heapq.heappop(_deadlines)
            if not _deadlines:
                _condition.wait()
                continue
            due, ticket = _deadlines[0]
            wait = due - time.monotonic()
            if wait > 0:
                _condition.wait(wait)
                continue
            heapq.heappop(_deadlines)
            try:
                _armed.pop(ticket)()
            except Exception:  # one failed action must not end the watching
                logger.exception("a query deadline's action failed")


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: it starts its own.
    global _condition, _thread
    _condition, _thread = threading.Condition(), None
    _deadlines.clear()
    _armed.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
