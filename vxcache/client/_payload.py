"""
Turn the node's JSON answers into records, pull results and artifacts.

Nothing here does I/O or knows about HTTP: each function takes parsed JSON
and either returns the typed value or raises :class:`ShapeError` with a short
description of what is wrong, which the caller turns into an
``UpstreamDataError`` naming the route.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from vxcache.errors import StateFormatError
from vxcache.records import (
    RecordShapeError,
    SessionListing,
    SessionRecord,
    parse_session,
    wire_digest,
)
from vxcache.terraform import load_state

# A run of 19 digits may be an integer past 64 bits, which orjson silently
# turns into a float; such bodies go to the standard library, which keeps it.
# The run is found by mapping every digit to "0" and searching for 19 zeros:
# ten times faster than a regex scan, which took 0.3 s on a 27 MB list.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS: Final = b"0" * 19

_COLLECTION_KEYS: Final = ("sessions", "items", "data", "results")
_RECORD_KEYS: Final = ("session", "data", "item", "result")
_PULL_WRAPPER_KEYS: Final = ("pull", "data", "result")
_STATE_KEYS: Final = ("terraform_state", "state", "tfstate")
_TEXT_ENCODINGS: Final = frozenset({"", "text", "plain", "utf-8", "utf8"})
_BASE64_ENCODINGS: Final = frozenset({"base64", "b64"})


class ShapeError(ValueError):
    """The node's answer parsed as JSON but does not have the expected shape."""


class JsonCutOffError(ValueError):
    """The answer ends before its JSON value does: it was cut off on the way."""


class NotJsonError(ValueError):
    """The answer is complete but is not JSON."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """
    One file a deploy generated, as pulled from the node.

    ``name`` comes from the node and is untrusted: sanitise it before using it
    as a path. ``encoding`` is how it travelled, ``"text"`` or ``"base64"``;
    ``content`` is always the decoded bytes.
    """

    name: str
    content: bytes = field(repr=False)
    content_type: str | None
    encoding: str


@dataclass(frozen=True, slots=True)
class PullResult:
    """
    A session's pulled Terraform state and artifacts, with the answer verbatim.

    ``body`` is the whole parsed answer; ``state`` is the Terraform state as a
    dict, or None when the node sent none. Both may hold secrets, so neither
    appears in the repr. ``size_bytes`` and ``sha256`` describe the raw body.
    """

    session_id: str
    body: dict[str, Any] = field(repr=False)
    state: dict[str, Any] | None = field(repr=False)
    artifacts: tuple[Artifact, ...]
    size_bytes: int
    sha256: str


def decode_json(body: bytes) -> Any:
    """
    Parse JSON with orjson, or the standard library where orjson would refuse it.

    The standard library also takes integers past 64 bits (kept exact), NaN and
    lone surrogate escapes.

    Raises:
        JsonCutOffError: the text stops in the middle of a value.
        NotJsonError: the text is not JSON.
    """
    if _LONG_DIGITS not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Unterminated string") or exc.pos >= len(
            exc.doc.rstrip()
        ):
            raise JsonCutOffError(f"the JSON stops at character {exc.pos}") from exc
        raise NotJsonError(
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise JsonCutOffError("the text stops inside a character") from exc
        raise NotJsonError(f"not UTF-8 text at byte {exc.start}") from exc
    except RecursionError as exc:
        raise NotJsonError("JSON nested too deeply") from exc


def parse_session_list(
    value: Any, *, known: Mapping[str, bytes] | None = None
) -> SessionListing:
    """
    Return the sessions of a list answer, bare or wrapped in an object.

    ``known`` maps session ids to the :func:`~vxcache.records.wire_digest` of
    items already parsed once; an item with the same digest is only counted
    in ``unchanged``, which spares a sync most of its parsing.

    Raises:
        ShapeError: no list of sessions is found, or an item is not a session.
    """
    if value is None:
        # An empty list inside an object may be null; a bare null is no answer.
        raise ShapeError("expected a list of sessions, got null")
    items = _find_collection(value, depth=2)
    known = known or {}
    listing = SessionListing()
    seen: set[str] = set()
    for index, item in enumerate(items):
        session_id = item.get("session_id") if isinstance(item, dict) else None
        digest = None
        if isinstance(session_id, str):
            if session_id in seen:
                listing.duplicates.append(session_id)
                continue
            seen.add(session_id)
            digest = wire_digest(item)
            if digest is not None and known.get(session_id) == digest:
                listing.unchanged.append(session_id)
                continue
        try:
            listing.records.append(parse_session(item, digest=digest))
        except RecordShapeError as exc:
            raise ShapeError(f"the session at index {index}: {exc}") from exc

    return listing


def parse_session_answer(value: Any, *, session_id: str) -> SessionRecord:
    """
    Return the session of a show answer, bare or wrapped (``{"session": {...}}``).

    Raises:
        ShapeError: the answer holds no readable session, or a different one.
    """
    item = _find_record(value)
    try:
        record = parse_session(item)
    except RecordShapeError as exc:
        raise ShapeError(str(exc)) from exc
    if record.session_id != session_id:
        raise ShapeError(
            f"asked for session {session_id!r}, got session {record.session_id!r}"
        )

    return record


def parse_pull_answer(
    value: Any, *, session_id: str, size_bytes: int, sha256: str
) -> PullResult:
    """
    Return the Terraform state and artifacts of a pull answer.

    The state may be an object or a JSON string (even double-encoded); the
    artifacts a list of ``{name, content, encoding?, content_type?}`` objects or
    a ``{name: content}`` mapping, each as text or base64.

    Raises:
        ShapeError: the answer is not an object, the state is not a readable
            Terraform state, or an artifact is malformed.
    """
    if not isinstance(value, dict):
        raise ShapeError(f"expected a JSON object, got {_kind(value)}")
    fields = _find_pull_fields(value)
    state = _parse_state(next((fields[k] for k in _STATE_KEYS if k in fields), None))
    artifacts = _parse_artifacts(fields.get("artifacts"))

    return PullResult(
        session_id=session_id,
        body=value,
        state=state,
        artifacts=artifacts,
        size_bytes=size_bytes,
        sha256=sha256,
    )


def parse_write_answer(value: Any) -> dict[str, Any]:
    """Return a write answer as an object, wrapping any other JSON value."""
    if isinstance(value, dict):
        return value
    if value is None:
        return {}

    return {"result": value}


def _find_collection(value: Any, *, depth: int) -> list[Any]:
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        raise ShapeError(f"expected a list of sessions, got {_kind(value)}")

    for key in _COLLECTION_KEYS:
        if isinstance(value.get(key), list):
            return list(value[key])
    lists = [member for member in value.values() if isinstance(member, list)]
    if len(lists) == 1:
        return lists[0]
    for key in _COLLECTION_KEYS:
        if key in value and value[key] is None:
            return []
        if depth > 1 and isinstance(value.get(key), dict):
            return _find_collection(value[key], depth=depth - 1)
    keys = ", ".join(sorted(value)) or "none"

    raise ShapeError(f"expected a list of sessions, got an object with keys {keys}")


def _find_record(value: Any) -> Any:
    if not isinstance(value, dict) or "session_id" in value:
        return value
    for key in _RECORD_KEYS:
        if isinstance(value.get(key), dict):
            return value[key]
    objects = [member for member in value.values() if isinstance(member, dict)]

    return objects[0] if len(objects) == 1 else value


def _find_pull_fields(value: dict[str, Any]) -> dict[str, Any]:
    known = (*_STATE_KEYS, "artifacts")
    if not value or any(key in value for key in known):
        return value  # {} is a pull of nothing
    for key in _PULL_WRAPPER_KEYS:
        inner = value.get(key)
        if isinstance(inner, dict) and (not inner or any(k in inner for k in known)):
            return inner
    keys = ", ".join(sorted(value))

    raise ShapeError(
        f"expected a Terraform state or artifacts, got an object with keys {keys}"
    )


def _parse_state(raw: Any) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, dict | str):
        raise ShapeError(f"the Terraform state is {_kind(raw)}, not an object")
    try:
        return load_state(raw)
    except StateFormatError as exc:
        raise ShapeError(str(exc).rstrip(".")) from exc


def _parse_artifacts(raw: Any) -> tuple[Artifact, ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        return tuple(_artifact_from_entry(name, item) for name, item in raw.items())
    if not isinstance(raw, list):
        raise ShapeError(f"'artifacts' is {_kind(raw)}, not a list or an object")

    artifacts = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ShapeError(f"artifact at index {index} is {_kind(item)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ShapeError(f"artifact at index {index} has no 'name' string")
        artifacts.append(_artifact_from_object(name, item))

    return tuple(artifacts)


def _artifact_from_entry(name: str, item: Any) -> Artifact:
    if isinstance(item, dict) and "content" in item:
        return _artifact_from_object(name, item)

    return _artifact_from_object(name, {"content": item})


def _artifact_from_object(name: str, item: dict[str, Any]) -> Artifact:
    if "content" not in item:
        raise ShapeError(f"artifact {name!r} has no 'content'")
    content = item["content"]
    content_type = item.get("content_type")
    if not isinstance(content_type, str) or not content_type:
        content_type = None
    encoding = item.get("encoding")
    encoding = encoding.strip().lower() if isinstance(encoding, str) else ""

    if isinstance(content, dict | list):
        # An artifact that is itself JSON, sent inline rather than as text.
        data = json.dumps(content, ensure_ascii=False).encode()
        return Artifact(name, data, content_type or "application/json", "text")
    if content is not None and not isinstance(content, str):
        raise ShapeError(f"artifact {name!r} content is {_kind(content)}")
    text = content or ""
    if encoding in _BASE64_ENCODINGS:
        return Artifact(name, _decode_base64(name, text), content_type, "base64")
    if encoding not in _TEXT_ENCODINGS:
        raise ShapeError(f"artifact {name!r} has unknown encoding {encoding!r}")

    return Artifact(name, text.encode("utf-8", "surrogatepass"), content_type, "text")


def _decode_base64(name: str, text: str) -> bytes:
    compact = "".join(text.split())
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ShapeError(
            f"artifact {name!r} has invalid base64 content: {exc}"
        ) from exc


def _kind(value: object) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
