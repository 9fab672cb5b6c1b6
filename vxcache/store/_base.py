"""The part of the store every other part builds on: the engine and transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from vxcache.errors import CacheBusyError, StoreError
from vxcache.store._engine import create_sqlite_engine, describe_db_error, prepare_file


class StoreBase:
    """An engine on the cache file and numbered write transactions."""

    def __init__(self, db_path: Path, *, busy_timeout_seconds: float = 5.0) -> None:
        self.db_path = db_path
        prepare_file(db_path)
        self.engine = create_sqlite_engine(
            db_path, busy_timeout_seconds=busy_timeout_seconds
        )

    @contextmanager
    def transaction(self) -> Iterator[tuple[Connection, int]]:
        """
        Open a write transaction and number it.

        Yields the connection and the new change sequence number, which every
        row written in the transaction records in ``change_seq``.
        """
        try:
            with self.engine.begin() as connection:
                seq = connection.execute(
                    text(
                        "UPDATE _vxcache_changes SET seq = seq + 1 WHERE id = 1 RETURNING seq"
                    )
                ).scalar_one()
                yield connection, int(seq)
        except OperationalError as exc:
            if "locked" in str(exc.orig):
                raise CacheBusyError(
                    f"the cache {self.db_path} stayed locked by another writer; try again"
                ) from exc
            raise StoreError(
                f"writing the cache failed: {describe_db_error(exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"writing the cache failed: {describe_db_error(exc)}"
            ) from exc

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """Open a read connection, translating database errors."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise StoreError(
                f"reading the cache failed: {describe_db_error(exc)}"
            ) from exc

    def change_seq(self) -> int:
        """Return the number of the last committed write transaction."""
        with self.reading() as connection:
            seq = connection.execute(
                text("SELECT seq FROM _vxcache_changes WHERE id = 1")
            )
            return int(seq.scalar_one())


def inserted_id(result: CursorResult[Any]) -> int:
    """Return the primary key an INSERT of one row created."""
    key = result.inserted_primary_key
    if key is None:
        raise StoreError("the cache did not return the id of a new row")
    return int(key[0])
