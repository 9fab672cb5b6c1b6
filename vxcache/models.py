"""
The cache schema as SQLModel tables. No I/O here.

Every table carries ``change_seq``: the number of the store transaction that
last wrote the row. The query part copies rows whose ``change_seq`` is past its
watermark, so an analytical replica stays current without rereading the cache.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; read them back aware, whatever the backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC value")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        moment: datetime = value
        return (
            moment.replace(tzinfo=UTC)
            if moment.tzinfo is None
            else moment.astimezone(UTC)
        )


def _at(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


def _text(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(Text(), nullable=nullable))


#: Columns of ``sessions`` that are vxcache's bookkeeping, never shown to users.
SESSION_BOOKKEEPING = frozenset(
    {"fingerprint", "wire_digest", "change_seq", "pull_wanted"}
)


class Session(SQLModel, table=True):
    """The current state of every session ever seen."""

    __tablename__ = "sessions"

    session_id: str = Field(primary_key=True)
    status: str
    hostname: str | None = None
    username: str | None = None
    script: str | None = None
    resource_id: str | None = None
    started_at: datetime | None = _at()
    ended_at: datetime | None = _at()
    extra: str | None = _text()
    fingerprint: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    # The list item this session's fields were last written from, as a digest of
    # its bytes: a list item with the same digest needs no parsing. NULL when
    # the fields came from elsewhere (show, a refresh).
    wire_digest: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary(), nullable=True)
    )
    version: int = 1
    first_seen_at: datetime = _at(nullable=False)
    last_seen_at: datetime | None = _at()
    presence: str = Field(default="listed", index=True)
    presence_changed_at: datetime | None = _at()
    stale: bool = False
    stale_since: datetime | None = _at()
    pull_wanted: bool = Field(default=False, index=True)
    last_pull_id: int | None = None
    change_seq: int = Field(default=0, index=True)


class SessionVersion(SQLModel, table=True):
    """One observed version of a session; versions form an unbroken chain."""

    __tablename__ = "session_history"

    session_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    status: str
    hostname: str | None = None
    username: str | None = None
    script: str | None = None
    resource_id: str | None = None
    started_at: datetime | None = _at()
    ended_at: datetime | None = _at()
    extra: str | None = _text()
    valid_from: datetime = _at(nullable=False)
    valid_to: datetime | None = _at()
    sync_id: int | None = None
    observed_via: str = "list"
    change_seq: int = Field(default=0, index=True)


class SyncRun(SQLModel, table=True):
    """One sync, with its counts; ``outcome`` is NULL while it runs."""

    __tablename__ = "sync_runs"

    sync_id: int | None = Field(default=None, primary_key=True)
    trigger: str
    started_at: datetime = _at(nullable=False)
    listed_at: datetime | None = _at()
    finished_at: datetime | None = _at()
    outcome: str | None = None
    listed: int | None = None
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    aged_out: int = 0
    gone: int = 0
    pulled: int = 0
    pull_failed: int = 0
    gap_from: datetime | None = _at()
    gap_to: datetime | None = _at()
    error: str | None = _text()
    change_seq: int = Field(default=0, index=True)


class Write(SQLModel, table=True):
    """One apply or delete attempted through vxcache."""

    __tablename__ = "writes"

    write_id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at(nullable=False)
    action: str
    session_id: str = Field(index=True)
    force: bool = False
    actor: str
    outcome: str
    http_status: int | None = None
    detail: str | None = _text()
    duration_s: float | None = None
    change_seq: int = Field(default=0, index=True)


class Blob(SQLModel, table=True):
    """Content stored once per sha256, zlib-compressed."""

    __tablename__ = "_vxcache_blobs"

    sha256: str = Field(primary_key=True)
    size_bytes: int
    compression: str = "zlib"
    data: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class Pull(SQLModel, table=True):
    """One pull of a session's state and artifacts."""

    __tablename__ = "pulls"
    __table_args__ = (Index("ix_pulls_session_pulled", "session_id", "pulled_at"),)

    pull_id: int | None = Field(default=None, primary_key=True)
    session_id: str
    sync_id: int | None = None
    pulled_at: datetime = _at(nullable=False)
    size_bytes: int
    sha256: str
    body_sha256: str
    redacted_values: int = 0
    change_seq: int = Field(default=0, index=True)


class Artifact(SQLModel, table=True):
    """One artifact of a pull; its content lives in the blob table."""

    __tablename__ = "artifacts"

    pull_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True)
    session_id: str = Field(index=True)
    kind: str
    content_type: str | None = None
    size_bytes: int
    sha256: str
    pulled_at: datetime = _at(nullable=False)
    change_seq: int = Field(default=0, index=True)


class TerraformState(SQLModel, table=True):
    """The Terraform state of one pull, summarised; the state is a blob."""

    __tablename__ = "terraform_states"

    pull_id: int = Field(primary_key=True)
    session_id: str = Field(index=True)
    pulled_at: datetime = _at(nullable=False)
    format_version: int
    terraform_version: str | None = None
    serial: int | None = None
    lineage: str | None = None
    resource_count: int
    state_sha256: str
    change_seq: int = Field(default=0, index=True)


class TerraformResource(SQLModel, table=True):
    """One resource of a pulled Terraform state."""

    __tablename__ = "terraform_resources"

    pull_id: int = Field(primary_key=True)
    address: str = Field(primary_key=True)
    session_id: str = Field(index=True)
    mode: str
    type: str
    name: str
    provider: str | None = None
    module: str | None = None
    instance_count: int
    change_seq: int = Field(default=0, index=True)


class ChangeCounter(SQLModel, table=True):
    """A single row: the number of the last store transaction that changed data."""

    __tablename__ = "_vxcache_changes"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
