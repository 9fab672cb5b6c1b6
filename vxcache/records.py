"""
The session record as the node sends it, parsed into one typed, tolerant shape.

The client turns every list or show item into a :class:`SessionRecord`; sync,
store and writes only ever see this type. Unknown fields are kept verbatim in
``extra``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from vxcache._time import format_timestamp, parse_timestamp

SESSION_FIELDS = (
    "session_id",
    "status",
    "hostname",
    "username",
    "script",
    "resource_id",
    "started_at",
    "ended_at",
)
_OPTIONAL_TEXT = ("hostname", "username", "script", "resource_id")
_KNOWN = frozenset(SESSION_FIELDS)


@dataclass(slots=True)
class SessionListing:
    """
    A list answer, each session once, in the node's order.

    ``records`` are the sessions that were parsed; ``unchanged`` are the ids of
    the rest, whose items were byte for byte the ones the caller said it had
    (so their records are the caller's already). ``duplicates`` are ids the
    list repeated; the first of each was kept.
    """

    records: list[SessionRecord] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.unchanged)

    def session_ids(self) -> set[str]:
        """Return the id of every listed session."""
        return {record.session_id for record in self.records}.union(self.unchanged)


class RecordShapeError(ValueError):
    """A session object from the node has a field of the wrong type."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session as observed at the node."""

    session_id: str
    status: str
    hostname: str | None = None
    username: str | None = None
    script: str | None = None
    resource_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: A digest of the list item this record was parsed from (see
    #: :func:`wire_digest`); None for records from anywhere else.
    wire_digest: bytes | None = field(default=None, repr=False, compare=False)
    # Kept after first use: a sync asks for it when diffing and again when writing.
    _fingerprint: bytes | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def fingerprint(self) -> bytes:
        """Return a digest of the documented fields; equal digests mean no change."""
        if self._fingerprint is not None:
            return self._fingerprint
        values = (
            self.session_id,
            self.status,
            self.hostname,
            self.username,
            self.script,
            self.resource_id,
            # Parsed timestamps are always UTC, so orjson's own rendering of
            # them is stable, and three times faster than formatting by hand.
            self.started_at,
            self.ended_at,
        )
        digest = hashlib.blake2b(orjson.dumps(values), digest_size=16).digest()
        object.__setattr__(self, "_fingerprint", digest)

        return digest

    def as_wire(self) -> dict[str, Any]:
        """Return the record in the node's own JSON shape, unknown fields included."""
        wire: dict[str, Any] = dict(self.extra)
        wire.update(
            session_id=self.session_id,
            status=self.status,
            hostname=self.hostname,
            username=self.username,
            script=self.script,
            resource_id=self.resource_id,
            started_at=format_timestamp(self.started_at),
            ended_at=format_timestamp(self.ended_at),
        )
        return wire


def wire_digest(item: Mapping[str, Any]) -> bytes | None:
    """
    Return a digest of a session object exactly as the node sent it.

    Equal digests mean equal items, key order included, so an item whose digest
    matches the one a session was last written from needs no parsing at all.
    None for the rare item orjson cannot render (an integer past 64 bits).
    """
    try:
        rendered = orjson.dumps(item)
    except orjson.JSONEncodeError:
        return None
    return hashlib.blake2b(rendered, digest_size=16).digest()


def parse_session(item: object, *, digest: bytes | None = None) -> SessionRecord:
    """
    Parse one session object from the node; ``digest`` is its :func:`wire_digest`.

    Raises:
        RecordShapeError: the item is not an object, lacks ``session_id`` or
            ``status``, or a known field has the wrong type.
    """
    if not isinstance(item, dict):
        raise RecordShapeError(
            f"a session must be a JSON object, got {type(item).__name__}"
        )
    session_id = item.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise RecordShapeError("a session has no 'session_id' string")
    status = item.get("status")
    if not isinstance(status, str):
        raise RecordShapeError(f"session {session_id} has no 'status' string")

    # The hot path of every sync: plain lookups, and extra fields only
    # gathered when the item has some.
    get = item.get
    texts = [get(name) for name in _OPTIONAL_TEXT]
    for name, value in zip(_OPTIONAL_TEXT, texts, strict=True):
        if value is not None and not isinstance(value, str):
            raise RecordShapeError(
                f"session {session_id} field {name!r} is not a string"
            )
    try:
        started_at = parse_timestamp(get("started_at"))
        ended_at = parse_timestamp(get("ended_at"))
    except ValueError as exc:
        raise RecordShapeError(f"session {session_id}: {exc}") from None
    extra = (
        {}
        if item.keys() <= _KNOWN
        else {key: value for key, value in item.items() if key not in _KNOWN}
    )
    hostname, username, script, resource_id = texts

    return SessionRecord(
        session_id=session_id,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        extra=extra,
        hostname=hostname,
        username=username,
        script=script,
        resource_id=resource_id,
        wire_digest=digest,
    )
