"""
How old the cache's view of the node is, and the line every read ends with.

Kept apart from the store so a query, which reads the DuckDB replica, can say
how old its answer is without loading SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from vxcache._time import utc_now
from vxcache._units import format_duration

#: Sync outcomes after which the cache holds what the node listed.
SUCCESS_OUTCOMES: Final = ("ok", "partial")


@dataclass(frozen=True, slots=True)
class Freshness:
    """When the node was last mirrored, and how the last attempt went."""

    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_attempt_outcome: str | None
    last_error: str | None

    def describe(self, *, refresh_failed: str | None = None) -> str:
        """
        Return the staleness line: the age of the last successful sync, and trouble.

        ``refresh_failed`` says a read through to the node was tried and failed.
        """
        if self.last_success_at is None:
            line = "cache never synced"
        else:
            age = (utc_now() - self.last_success_at).total_seconds()
            line = f"cached {format_duration(age)} ago"
        if refresh_failed:
            line += f"; node unreachable ({refresh_failed})"
        elif self.last_attempt_outcome == "failed":
            line += f"; last sync failed: {self.last_error}"
        return line
