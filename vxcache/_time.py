"""Timestamps: parse every honest ISO-8601 form a Python or Go server emits, as UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(value: object) -> datetime | None:
    """
    Return an aware UTC datetime, or None for "no value".

    None, an empty string and Go's zero time (year 1) all mean no value. A
    timestamp without a zone is taken as UTC; fractional digits past six are
    dropped.

    Raises:
        ValueError: the value is not an ISO-8601 timestamp.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    text = value.strip()
    if text[-1:] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if parsed.year == 1:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)

    return parsed.astimezone(UTC)


def utc_now() -> datetime:
    """Return the current time, aware and in UTC."""
    return datetime.now(UTC)


def format_timestamp(value: datetime | None) -> str | None:
    """Return ISO-8601 in UTC with a ``Z``, the form vxcache prints and stores."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
