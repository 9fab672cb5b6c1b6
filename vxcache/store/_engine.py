"""The SQLite engine: file permissions, connection pragmas and schema migrations."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text

# Imported with the store, not by the first create_engine(), where its 10 ms
# landed inside the first sync.
from sqlalchemy.dialects import sqlite as _sqlite_dialect  # noqa: F401
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from vxcache.errors import MigrationError, StoreError

logger = logging.getLogger(__name__)

#: The newest migration this vxcache knows; a test keeps it equal to Alembic's head.
SCHEMA_REVISION = "0002"


def describe_db_error(exc: SQLAlchemyError) -> str:
    """Return the database's own words for an error, without SQLAlchemy's wrapping."""
    original = getattr(exc, "orig", None)
    return str(original or exc)


def prepare_file(db_path: Path) -> None:
    """Create the cache folder (0700) and file (0600) so no one else can read them."""
    folder = db_path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    descriptor = os.open(db_path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(descriptor)
    if db_path.stat().st_uid == os.getuid():
        db_path.chmod(0o600)


def create_sqlite_engine(db_path: Path, *, busy_timeout_seconds: float) -> Engine:
    """Return an engine on ``db_path`` in WAL mode with a busy timeout."""
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False},
        # Pooled connections stay open between transactions: closing the
        # last connection to a WAL file checkpoints it, which took several
        # milliseconds after every write. Past the pool, more connections open
        # as needed and close on return, so no thread ever waits for one.
        poolclass=QueuePool,
        pool_size=5,
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _configure(connection: sqlite3.Connection, _record: Any) -> None:
        cursor = connection.cursor()
        # WAL lets readers go on while a sync writes; NORMAL is durable at each
        # checkpoint and safe against corruption, which is what a cache needs.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.close()

    return engine


def current_revision(engine: Engine) -> str | None:
    """Return the schema revision stored in the cache, or None for an empty file."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            revision = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the cache schema: {describe_db_error(exc)}"
        ) from exc

    return str(revision) if revision is not None else None


def migrations_folder() -> Path:
    """Return the Alembic scripts, installed in the package or at the repository root."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError("the migration scripts are missing from this installation")


def upgrade_schema(engine: Engine) -> str:
    """Apply every pending migration and return the new revision."""
    from alembic import command
    from alembic.config import Config

    found = current_revision(engine)
    if found is not None and found > SCHEMA_REVISION:
        raise MigrationError(
            f"cache schema is at {found}, newer than this vxcache ({SCHEMA_REVISION}); "
            "upgrade vxcache"
        )
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"migrating the cache failed: {describe_db_error(exc)}"
        ) from exc
    logger.info("cache schema upgraded from=%s to=%s", found, SCHEMA_REVISION)

    return SCHEMA_REVISION


def ensure_schema(engine: Engine) -> None:
    """Migrate an empty or older cache; refuse a cache newer than this vxcache."""
    found = current_revision(engine)
    if found == SCHEMA_REVISION:
        return
    upgrade_schema(engine)
