"""Alembic migrations against the SQLModel schema: the same tables, the same head."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import make_settings
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import vxcache.models  # noqa: F401  # registers the tables on SQLModel.metadata
from vxcache.errors import MigrationError
from vxcache.store import SCHEMA_REVISION, Store
from vxcache.store._engine import create_sqlite_engine, migrations_folder, prepare_file


def alembic_head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    return ScriptDirectory.from_config(config).get_current_head()


def migrated_store(db_path: Path) -> Store:
    store = Store(db_path)
    store.upgrade()
    return store


def test_migrations_give_exactly_the_models(db_path: Path) -> None:
    store = migrated_store(db_path)

    with store.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), SQLModel.metadata
        )
    store.close()

    assert differences == []


def test_schema_revision_is_alembic_head() -> None:
    head = alembic_head()

    assert head == SCHEMA_REVISION


def test_upgrade_reaches_the_schema_revision(db_path: Path) -> None:
    store = migrated_store(db_path)

    revision = store.revision()
    store.close()

    assert revision == SCHEMA_REVISION


def test_open_migrates_an_empty_file(db_path: Path) -> None:
    prepare_file(db_path)
    settings = make_settings(None, db_path)

    with Store.open(settings) as store:
        tables = set(inspect(store.engine).get_table_names())

    assert set(SQLModel.metadata.tables) <= tables


def test_open_refuses_a_cache_newer_than_the_code(db_path: Path) -> None:
    migrated_store(db_path).close()
    engine = create_sqlite_engine(db_path, busy_timeout_seconds=1)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    settings = make_settings(None, db_path)

    with pytest.raises(
        MigrationError, match=rf"newer than this vxcache \({SCHEMA_REVISION}\); upgrade"
    ):
        Store.open(settings)


def test_open_leaves_a_migrated_cache_as_it_is(db_path: Path) -> None:
    settings = make_settings(None, db_path)
    with Store.open(settings) as store:
        before = store.change_seq()

    with Store.open(settings) as store:
        after = (store.revision(), store.change_seq())

    assert after == (SCHEMA_REVISION, before)
