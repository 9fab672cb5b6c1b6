"""Logging setup for the command line and the server; library code never calls it."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A person running a command sees warnings as one short line each, like notes.
_BRIEF_FORMAT = "%(levelname_lower)s: %(message)s"


class _BriefFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname_lower = record.levelname.lower()
        return super().format(record)


def configure_logging(
    verbosity: int, *, default_level: int = logging.WARNING, is_brief: bool = False
) -> None:
    """
    Send vxcache's log records to stderr.

    ``verbosity`` counts ``-v`` flags: 1 is INFO, 2 or more is DEBUG; 0 keeps
    ``default_level`` (WARNING for commands, INFO for ``serve``). ``is_brief``
    drops the time and logger name when no ``-v`` was given.
    """
    level = {0: default_level, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    if is_brief and verbosity == 0:
        handler.setFormatter(_BriefFormatter(_BRIEF_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx and httpcore log full URLs at INFO and DEBUG; keep them quiet
    # unless asked twice, and even then vxcache never puts secrets in URLs.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(
            logging.DEBUG if verbosity > 2 else logging.WARNING
        )
    # Alembic announces every migration context at INFO; the store logs its own line.
    logging.getLogger("alembic").setLevel(logging.WARNING)
