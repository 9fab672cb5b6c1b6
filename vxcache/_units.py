"""Parse the human units used in configuration and options: durations and sizes."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE
)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: str | float | int) -> float:
    """
    Return seconds for ``90s``, ``5m``, ``1h``, ``250ms``, ``2d`` or a bare number.

    Raises:
        ValueError: the text is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 90s, 5m or 1h")
        seconds = float(match[1]) * _DURATION_UNITS[match[2] or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")

    return seconds


def parse_size(value: str | int) -> int:
    """
    Return bytes for ``64MiB``, ``500kb``, ``1GB`` or a bare integer.

    Raises:
        ValueError: the text is not a non-negative size.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size like 64MiB")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a size like 64MiB or 500kB")
        size = int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])
    if size < 0:
        raise ValueError("a size cannot be negative")

    return size


def format_duration(seconds: float) -> str:
    """Return a short human form of an age: ``42s``, ``7 min``, ``3 h``, ``2 days``."""
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"

    return f"{seconds / 86400:.0f} days"
