"""
The store: the only code that writes the SQLite cache.

Every write is one short transaction that bumps the change counter, so a
crash at any point leaves either the whole transaction or none of it.

Example:
    >>> with Store.open(settings) as store:
    ...     store.session("ses_0a1b2c")
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vxcache.errors import StoreError
from vxcache.models import SyncRun
from vxcache.store._base import inserted_id
from vxcache.store._engine import (
    SCHEMA_REVISION,
    current_revision,
    ensure_schema,
    upgrade_schema,
)
from vxcache.store._reads import ReadMixin
from vxcache.store._types import (
    ArtifactInput,
    IndexEntry,
    ListingChanges,
    PullInput,
    StateInput,
    SyncCounts,
)
from vxcache.store._writes import WriteMixin

if TYPE_CHECKING:
    from vxcache.config import Settings

__all__ = [
    "SCHEMA_REVISION",
    "ArtifactInput",
    "IndexEntry",
    "ListingChanges",
    "PullInput",
    "StateInput",
    "Store",
    "SyncCounts",
]

logger = logging.getLogger(__name__)


class Store(WriteMixin, ReadMixin):
    """The SQLite cache: schema, sessions, history, pulls, writes and sync runs."""

    @classmethod
    def open(
        cls, settings: Settings, *, migrate: bool = True, create: bool = True
    ) -> Store:
        """
        Open the cache the settings name, migrating it when needed.

        Raises:
            StoreError: ``create`` is false and there is no cache file yet.
        """
        if not create and not settings.cache.db_path.is_file():
            raise StoreError(
                f"there is no cache at {settings.cache.db_path}; run `vxcache sync` "
                "first, or check --db and VXCACHE_DB"
            )
        store = cls(
            settings.cache.db_path, busy_timeout_seconds=settings.cache.busy_timeout
        )
        if migrate:
            try:
                ensure_schema(store.engine)
            except BaseException:
                store.close()
                raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.db_path)!r})"

    def close(self) -> None:
        """Release every connection to the cache file."""
        self.engine.dispose()

    def revision(self) -> str | None:
        """Return the schema revision of the cache file."""
        return current_revision(self.engine)

    def upgrade(self) -> str:
        """Apply pending migrations; return the revision reached."""
        return upgrade_schema(self.engine)

    # -- sync runs ---------------------------------------------------------------

    def begin_sync(self, *, trigger: str, started_at: datetime) -> int:
        """Record a sync as started; close runs that a crash left open."""
        with self.transaction() as (connection, seq):
            connection.execute(
                update(SyncRun)
                .where(SyncRun.outcome.is_(None))  # type: ignore[union-attr]
                .values(
                    outcome="failed",
                    error="interrupted before it finished",
                    finished_at=started_at,
                    change_seq=seq,
                )
            )
            result = connection.execute(
                SyncRun.__table__.insert().values(  # type: ignore[attr-defined]
                    trigger=trigger, started_at=started_at, change_seq=seq
                )
            )
            sync_id = inserted_id(result)

        return sync_id

    def finish_sync(self, sync_id: int, counts: SyncCounts) -> None:
        """Record a sync's outcome and counts."""
        with self.transaction() as (connection, seq):
            connection.execute(
                update(SyncRun)
                .where(SyncRun.sync_id == sync_id)  # type: ignore[arg-type]
                .values(change_seq=seq, **counts.as_values())
            )

    def sync_run(self, sync_id: int) -> SyncRun | None:
        """Return one sync run."""
        with self.reading() as connection:
            row = connection.execute(
                select(SyncRun).where(SyncRun.sync_id == sync_id)  # type: ignore[arg-type]
            ).first()
        return SyncRun.model_construct(**row._mapping) if row else None
