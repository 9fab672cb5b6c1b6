"""
The replica's layout: base tables copied from the cache, and the public SQL surface.

The copied tables live in the schema ``cache``; the relations ``interface.md``
promises are views in ``main``, so ``SHOW TABLES`` lists exactly the public
names. ``session_history`` is copied as two tables: a row is only ever changed
while it is a session's current version (its ``valid_to`` is set when the next
version arrives), so a refresh deletes from the small ``_current`` table and
only appends to the large ``_closed`` one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from vxcache.freshness import SUCCESS_OUTCOMES

#: Bumped whenever the views, macros or base-table layout below change, so an
#: older replica is rebuilt even though the cache's schema revision is the same.
REPLICA_FORMAT: Final = 3

#: The DuckDB schema holding the copied tables.
BASE_SCHEMA: Final = "cache"

#: Every public relation, in the order exports and docs list them.
PUBLIC_RELATIONS: Final = (
    "sessions",
    "session_history",
    "artifacts",
    "pulls",
    "terraform_states",
    "terraform_resources",
    "writes",
    "sync_runs",
)

HISTORY: Final = "session_history"
_JSON_COLUMNS: Final = frozenset({"extra"})


@dataclass(frozen=True, slots=True)
class Column:
    """One copied column: its name and DuckDB type."""

    name: str
    duck_type: str


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One cache table the replica copies, with its primary key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Return the column names in cache order."""
        return tuple(column.name for column in self.columns)

    def targets(self) -> tuple[str, ...]:
        """Return the qualified base tables this cache table is copied into."""
        if self.name == HISTORY:
            return (
                f"{BASE_SCHEMA}.{HISTORY}_current",
                f"{BASE_SCHEMA}.{HISTORY}_closed",
            )
        return (f"{BASE_SCHEMA}.{self.name}",)


@functools.cache
def table_specs() -> tuple[TableSpec, ...]:
    """Return every cache table the replica copies; blobs stay in SQLite."""
    # Imported here: SQLAlchemy takes a quarter second to load, and a query on
    # a current replica never needs it.
    from sqlalchemy import Boolean, Float, Integer, LargeBinary

    from vxcache.models import Session, UTCDateTime

    def duck_type(name: str, sql_type: object) -> str:
        if isinstance(sql_type, UTCDateTime):
            return "TIMESTAMPTZ"
        if isinstance(sql_type, Boolean):
            return "BOOLEAN"
        if isinstance(sql_type, Integer):
            return "BIGINT"
        if isinstance(sql_type, Float):
            return "DOUBLE"
        return "JSON" if name in _JSON_COLUMNS else "VARCHAR"

    specs = []
    for name in PUBLIC_RELATIONS:
        table = Session.metadata.tables[name]
        # Binary columns (a session's fingerprint) are bookkeeping, not data.
        columns = tuple(
            Column(c.name, duck_type(c.name, c.type))
            for c in table.columns
            if not isinstance(c.type, LargeBinary)
        )
        key = tuple(column.name for column in table.primary_key.columns)
        specs.append(TableSpec(name=name, columns=columns, key=key))

    return tuple(specs)


def quote_literal(text: str) -> str:
    """Return ``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def base_table_ddl(spec: TableSpec) -> list[str]:
    """Return CREATE TABLE statements for a spec's base tables."""
    body = ", ".join(f'"{c.name}" {c.duck_type}' for c in spec.columns)
    return [f"CREATE TABLE {target} ({body})" for target in spec.targets()]


META_DDL: Final = f"""
CREATE TABLE {BASE_SCHEMA}.replica_meta (
    format INTEGER NOT NULL,
    revision VARCHAR NOT NULL,
    cache_id VARCHAR NOT NULL,
    watermark BIGINT NOT NULL,
    refreshed_at TIMESTAMPTZ NOT NULL,
    last_success_at TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    last_attempt_outcome VARCHAR,
    last_error VARCHAR
)
"""

_B = BASE_SCHEMA
_SUCCESS = ", ".join(f"'{outcome}'" for outcome in SUCCESS_OUTCOMES)

#: Records what a replica holds: its identity, watermark, and how fresh the
#: cache was, so a query reads its staleness from one row.
META_INSERT: Final = f"""
INSERT INTO {_B}.replica_meta
SELECT ?, ?, ?, ?, now(),
       max(finished_at) FILTER (WHERE outcome IN ({_SUCCESS})),
       arg_max(finished_at, sync_id) FILTER (WHERE outcome IS NOT NULL),
       arg_max(outcome, sync_id) FILTER (WHERE outcome IS NOT NULL),
       arg_max(error, sync_id) FILTER (WHERE outcome IS NOT NULL)
FROM {_B}.sync_runs
"""
_SESSION_FIELDS = (
    "status, hostname, username, script, resource_id, started_at, ended_at"
)
_DURATION = "(epoch_us(ended_at) - epoch_us(started_at)) / 1e6 AS duration_s"
_HISTORY_SELECT = f"""
SELECT session_id, version, {_SESSION_FIELDS}, {_DURATION}, extra,
       valid_from, valid_to, sync_id, observed_via
FROM {_B}.{HISTORY}_"""

# The status vocabulary, defined once. A failure is a session that ended
# without doing what it was asked; `cancelled` is a deliberate stop, neither
# a success nor a failure. A session is settled once it is no longer in
# flight; failure rates are failures over settled sessions.
#
# utc_day(ts) is the UTC calendar day of a timestamp. CAST(ts AS DATE) gives
# the same day in a UTC session, but goes through the time zone library for
# every row, which took half the time of a report grouping by day.
MACROS: Final = (
    "CREATE MACRO is_failure(status) AS "
    "status IN ('failed', 'timed_out', 'rolled_back', 'delete_failed')",
    "CREATE MACRO is_in_flight(status) AS "
    "status IN ('queued', 'running', 'applying', 'deleting')",
    "CREATE MACRO is_settled(status) AS NOT is_in_flight(status)",
    "CREATE MACRO utc_day(ts) AS CAST(make_timestamp(epoch_us(ts)) AS DATE)",
)

PUBLIC_DDL: Final = (
    *MACROS,
    f"""
CREATE VIEW sessions AS
WITH last_listing AS (
    SELECT max(listed_at) AS listed_at FROM {_B}.sync_runs
    WHERE outcome IN ({_SUCCESS})
)
SELECT s.session_id, s.status, s.hostname, s.username, s.script, s.resource_id,
       s.started_at, s.ended_at,
       (epoch_us(s.ended_at) - epoch_us(s.started_at)) / 1e6 AS duration_s,
       s.first_seen_at,
       CASE WHEN s.presence = 'listed' THEN coalesce(l.listed_at, s.last_seen_at)
            ELSE s.last_seen_at END AS last_seen_at,
       s.presence, s.stale, s.extra, s.version, s.presence_changed_at,
       s.stale_since, s.last_pull_id
FROM {_B}.sessions AS s CROSS JOIN last_listing AS l
""",
    f"CREATE VIEW {HISTORY} AS {_HISTORY_SELECT}current "
    f"UNION ALL {_HISTORY_SELECT}closed",
    f"""
CREATE VIEW artifacts AS
SELECT session_id, pull_id, name, kind, size_bytes, sha256, pulled_at, content_type
FROM {_B}.artifacts
""",
    f"""
CREATE VIEW pulls AS
SELECT pull_id, session_id, sync_id, pulled_at, size_bytes, sha256, body_sha256,
       redacted_values
FROM {_B}.pulls
""",
    f"""
CREATE VIEW terraform_states AS
SELECT session_id, pull_id, pulled_at, terraform_version, serial, lineage,
       resource_count, format_version, state_sha256
FROM {_B}.terraform_states
""",
    f"""
CREATE VIEW terraform_resources AS
SELECT session_id, pull_id, address, mode, type, name, provider, module, instance_count
FROM {_B}.terraform_resources
""",
    f"""
CREATE VIEW writes AS
SELECT write_id, "at", action, session_id, force, actor, outcome, http_status, detail,
       duration_s
FROM {_B}.writes
""",
    f"""
CREATE VIEW sync_runs AS
SELECT sync_id, trigger, started_at, finished_at, outcome, listed, new, changed,
       unchanged, aged_out, gone, pulled, error, listed_at, pull_failed, gap_from,
       gap_to
FROM {_B}.sync_runs
""",
    # The version valid at `ts`: valid_from <= ts < valid_to (open-ended when
    # NULL), for every session ever seen, with where the session stands now.
    f"""
CREATE MACRO sessions_as_of(ts) AS TABLE
SELECT h.*, s.presence AS current_presence
FROM {HISTORY} AS h JOIN {_B}.sessions AS s USING (session_id)
WHERE h.valid_from <= CAST(ts AS TIMESTAMPTZ)
  AND (h.valid_to IS NULL OR CAST(ts AS TIMESTAMPTZ) < h.valid_to)
""",
)
