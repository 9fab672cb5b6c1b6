"""JSON for the API: orjson, timestamps in UTC with a ``Z``, SQL values made plain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from fastapi.responses import Response

from vxcache._time import format_timestamp

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def plain_value(value: Any) -> Any:
    """Return a JSON-ready form of a value orjson does not know (DuckDB types)."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def render_json(content: Any) -> bytes:
    """Serialize content for a response body."""
    try:
        return orjson.dumps(content, default=plain_value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # orjson refuses integers past 64 bits (DuckDB's HUGEINT); only then is
        # the content walked, turning those into strings.
        return orjson.dumps(
            _wide_ints_as_text(content), default=plain_value, option=_OPTIONS
        )


def _wide_ints_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {key: _wide_ints_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_ints_as_text(item) for item in value]
    return value


def envelope(
    data: Any,
    freshness: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Answer success: ``{"ok": true, "data": ..., "freshness": ...}``."""
    body = render_json({"ok": True, "data": data, "freshness": freshness})
    return Response(
        body, status_code=status_code, headers=headers, media_type="application/json"
    )


def freshness_headers(freshness: dict[str, Any]) -> dict[str, str]:
    """Return freshness as response headers, for answers whose body has a fixed shape."""
    reachable = freshness["node_reachable"]
    headers = {
        "X-Vxcache-Node-Reachable": "unknown"
        if reachable is None
        else str(reachable).lower()
    }
    synced_at = freshness["synced_at"]
    if synced_at is not None:
        headers["X-Vxcache-Synced-At"] = format_timestamp(synced_at) or ""
        headers["X-Vxcache-Age-Seconds"] = f"{freshness['age_seconds']:.3f}"
    return headers
