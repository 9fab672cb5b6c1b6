"""Plain values handed to the store by sync and writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from vxcache.records import SessionRecord
from vxcache.terraform import TerraformResource


class IndexEntry(NamedTuple):
    """
    What sync needs to know of a cached session to diff it against the node.

    A named tuple, not a frozen dataclass: a sync builds one per cached
    session, and a tuple is built in half the time.
    """

    fingerprint: bytes
    version: int
    presence: str
    wire_digest: bytes | None = None


@dataclass(frozen=True, slots=True)
class ChangedSession:
    """A session whose documented fields changed: its next version."""

    record: SessionRecord
    version: int
    wants_pull: bool


@dataclass(slots=True)
class ListingChanges:
    """What one list answer changes in the cache."""

    new: list[SessionRecord] = field(default_factory=list)
    changed: list[ChangedSession] = field(default_factory=list)
    relisted: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    #: Unchanged sessions whose wire digest the cache lacks (written before it
    #: kept one, or last written from show): recorded so the next list skips them.
    digests: list[SessionRecord] = field(default_factory=list)

    def without(self, session_ids: set[str]) -> ListingChanges:
        """Return these changes less those touching ``session_ids``."""
        if not session_ids:
            return self
        return ListingChanges(
            new=[r for r in self.new if r.session_id not in session_ids],
            changed=[c for c in self.changed if c.record.session_id not in session_ids],
            relisted=[sid for sid in self.relisted if sid not in session_ids],
            refreshed=[sid for sid in self.refreshed if sid not in session_ids],
            digests=[r for r in self.digests if r.session_id not in session_ids],
        )


@dataclass(slots=True)
class SyncCounts:
    """The counters and outcome of one sync run."""

    outcome: str | None = None
    listed_at: datetime | None = None
    finished_at: datetime | None = None
    listed: int | None = None
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    aged_out: int = 0
    gone: int = 0
    pulled: int = 0
    pull_failed: int = 0
    gap_from: datetime | None = None
    gap_to: datetime | None = None
    error: str | None = None

    def as_values(self) -> dict[str, Any]:
        """Return the counts as column values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ArtifactInput:
    """One artifact of a pull, its content in full."""

    name: str
    content: bytes
    kind: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class StateInput:
    """A pulled Terraform state, already redacted as the settings ask."""

    document: bytes
    format_version: int
    terraform_version: str | None
    serial: int | None
    lineage: str | None
    resources: tuple[TerraformResource, ...]


@dataclass(frozen=True, slots=True)
class PullInput:
    """One pull answer, ready to store."""

    session_id: str
    pulled_at: datetime
    size_bytes: int
    sha256: str
    body: bytes
    redacted_values: int
    artifacts: tuple[ArtifactInput, ...]
    state: StateInput | None
