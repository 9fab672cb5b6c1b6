"""
Wire forms of timestamps: the honest ISO-8601 variants Python and Go servers emit.

Times are kept as integer nanoseconds since the Unix epoch (UTC). A session picks
one form for good, and its instants are cut to that form's precision when they
are made, so every form of the same session names the same instant.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

NANOS: Final = 1_000_000_000
GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_EPOCH: Final = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class TimeForm:
    """
    One way of writing an instant: zone suffix, shown offset and fraction digits.
    """

    offset_minutes: int
    digits: int
    zone: str

    def quantum_nanos(self) -> int:
        """
        Return the smallest step this form can show, in nanoseconds.
        """
        return int(10 ** (9 - self.digits))


# (form, weight): plain Z and Python's isoformat are the most common on the wire.
_WEIGHTED_FORMS: Final = (
    (TimeForm(0, 6, "Z"), 30),
    (TimeForm(0, 6, "+00:00"), 20),
    (TimeForm(0, 0, "Z"), 12),
    (TimeForm(0, 6, ""), 8),
    (TimeForm(0, 9, "Z"), 8),
    (TimeForm(120, 3, "+02:00"), 6),
    (TimeForm(0, 3, "+00:00"), 5),
    (TimeForm(-300, 0, "-05:00"), 4),
    (TimeForm(330, 6, "+05:30"), 4),
    (TimeForm(0, 0, ""), 3),
)
FORMS: Final = tuple(form for form, _ in _WEIGHTED_FORMS)
FORM_WEIGHTS: Final = tuple(weight for _, weight in _WEIGHTED_FORMS)
PLAIN_FORM: Final = TimeForm(0, 6, "Z")

# How an unset ended_at shows while a session runs, in "mixed" style.
OPEN_ABSENT: Final = 0
OPEN_NULL: Final = 1
OPEN_EMPTY: Final = 2
OPEN_ZERO: Final = 3
OPEN_FORMS: Final = (OPEN_ABSENT, OPEN_NULL, OPEN_EMPTY, OPEN_ZERO)


def now_nanos() -> int:
    """
    Return the wall clock in nanoseconds since the epoch.
    """
    return time.time_ns()


def to_nanos(moment: datetime) -> int:
    """
    Return an aware or naive (taken as UTC) datetime in epoch nanoseconds.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    whole = int((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1))
    return whole * NANOS + moment.microsecond * 1000


def parse_wire_time(value: object) -> int | None:
    """
    Return the instant a wire value names, or None for no usable instant.
    """
    if not isinstance(value, str) or not value or value == GO_ZERO_TIME:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None

    return to_nanos(moment)


@functools.lru_cache(maxsize=4096)
def _date_text(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")


def render_time(nanos: int, form: TimeForm) -> str:
    """
    Write an instant in the given form.
    """
    seconds, fraction = divmod(nanos, NANOS)
    days, seconds = divmod(seconds + form.offset_minutes * 60, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{_date_text(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}"
    if form.digits:
        text += "." + f"{fraction:09d}"[: form.digits]

    return text + form.zone


def render_open(open_form: int) -> str | None:
    """
    Return the wire value of an unset ended_at (absent is handled by the caller).
    """
    if open_form == OPEN_EMPTY:
        return ""
    if open_form == OPEN_ZERO:
        return GO_ZERO_TIME
    return None
