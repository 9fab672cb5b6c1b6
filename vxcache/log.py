"""Logging setup for the command line and the server; library code never calls it."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbosity: int, *, default_level: int = logging.WARNING) -> None:
    """
    Send vxcache's log records to stderr.

    ``verbosity`` counts ``-v`` flags: 1 is INFO, 2 or more is DEBUG; 0 keeps
    ``default_level`` (WARNING for commands, INFO for ``serve``).
    """
    level = {0: default_level, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
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
