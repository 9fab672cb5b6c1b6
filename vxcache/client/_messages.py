"""Words for the user: the node's own error detail, Retry-After and safe URLs."""

from __future__ import annotations

import email.utils
import html
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from vxcache.client._payload import JsonCutOffError, NotJsonError, decode_json

MAX_DETAIL_CHARS: Final = 300

_TITLE: Final = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HEADING: Final = re.compile(
    rb"<h([1-6])[^>]*>(.*?)</h\1\s*>", re.IGNORECASE | re.DOTALL
)
_TAG: Final = re.compile(r"<[^>]*>")
_DETAIL_KEYS: Final = ("detail", "message", "error", "msg", "title", "description")


def safe_url(url: str) -> str:
    """Return a URL without user info, query string or fragment, fit to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"

    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def safe_path(path: str) -> str:
    """Return a route path without its query string or fragment."""
    return re.split(r"[?#]", path, maxsplit=1)[0]


def extract_detail(body: bytes, *, is_cut_off: bool = False) -> str:
    """
    Return the node's (or a proxy's) own words from an error answer, briefly.

    FastAPI's ``{"detail": ...}`` bodies, other JSON, HTML pages (their title or
    first heading) and plain text are understood; an empty body reads as
    ``empty answer``.
    """
    if not body.strip():
        return "cut-off answer" if is_cut_off else "empty answer"
    detail = _detail_from_body(body)
    if is_cut_off:
        detail = f"{detail} (answer cut off)"

    return detail


def describe_body(body: bytes) -> str:
    """Return what a body that should have been JSON looks like, for a message."""
    if not body.strip():
        return "an empty answer"
    if _looks_like_html(body):
        return f"an HTML page ({_html_detail(body)!r})"

    return f"text starting {_collapse(body[:60].decode('utf-8', 'replace'))!r}"


def parse_retry_after(
    value: str | None, *, now: datetime | None = None
) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, or None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None

    return max(0.0, seconds)


def format_bytes(size: int) -> str:
    """Return a byte count the way the config writes sizes: ``64MiB``, ``512B``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g}{unit}"

    return f"{size}B"


def format_seconds(seconds: float) -> str:
    """Return seconds briefly: ``0.5s``, ``30s``."""
    return f"{seconds:.3g}s"


def _detail_from_body(body: bytes) -> str:
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"[", b'"'):
        try:
            return _clip(_detail_from_json(decode_json(body)))
        except (JsonCutOffError, NotJsonError):
            pass
    if _looks_like_html(body):
        return _clip(_html_detail(body))

    return _clip(_collapse(body.decode("utf-8", "replace")))


def _detail_from_json(value: Any) -> str:
    if isinstance(value, str):
        return _collapse(value)
    if isinstance(value, dict):
        for key in _DETAIL_KEYS:
            if value.get(key) not in (None, "", [], {}):
                return _detail_from_json(value[key])
    if isinstance(value, list) and value:
        return "; ".join(_validation_item(item) for item in value)

    return _collapse(json.dumps(value, ensure_ascii=False, default=str))


def _validation_item(item: Any) -> str:
    if not isinstance(item, dict) or "msg" not in item:
        return _detail_from_json(item)
    message = _collapse(str(item["msg"]))
    location = item.get("loc")
    if isinstance(location, list | tuple) and location:
        return f"{'.'.join(str(part) for part in location)}: {message}"
    if isinstance(location, str) and location:
        return f"{location}: {message}"

    return message


def _looks_like_html(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        head.startswith(b"<") and (b"<title" in body[:4096].lower())
    )


def _html_detail(body: bytes) -> str:
    found = _TITLE.search(body)
    text = _html_text(found[1]) if found else ""
    if not text:
        heading = _HEADING.search(body)
        text = _html_text(heading[2]) if heading else ""

    return text or "an HTML page without a title"


def _html_text(fragment: bytes) -> str:
    text = _TAG.sub(" ", fragment.decode("utf-8", "replace"))
    return _collapse(html.unescape(text))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return text[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
