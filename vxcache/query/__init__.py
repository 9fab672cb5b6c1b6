"""
Analytical SQL over the cache, answered by DuckDB from a read-only replica.

Every query first brings the replica up to date (a no-op costs a millisecond
or two), then runs in a sandbox: one reading statement, no files, network or
extensions, a time limit and a row cap. Timestamps are TIMESTAMPTZ in UTC.

Named parameters (``$since``) usually arrive as strings from the command line.
DuckDB casts them where the comparison makes the type plain
(``started_at >= $since``); built-in reports always cast explicitly, as in
``$since::TIMESTAMPTZ`` or ``CAST($days AS INTEGER)``, and so should yours.

Example:
    >>> result = run_query(settings, "SELECT status, count(*) AS n FROM sessions GROUP BY ALL")
    >>> result.columns
    ['status', 'n']

Reports live in :mod:`vxcache.query.reports`, snapshots in :mod:`vxcache.query.export`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import duckdb

from vxcache.config import Settings
from vxcache.errors import UsageError
from vxcache.freshness import Freshness
from vxcache.query import _sandbox
from vxcache.query._files import ReplicaInfo, replica_path
from vxcache.query._replica import refresh_replica
from vxcache.query._sandbox import check_statement

__all__ = [
    "ROW_CAP_FROM_SETTINGS",
    "QueryResult",
    "ReplicaInfo",
    "RowCap",
    "check_statement",
    "open_readonly",
    "refresh_replica",
    "replica_path",
    "run_query",
]


class _RowCap(enum.Enum):
    FROM_SETTINGS = "from settings"


#: The default of ``row_cap``: use ``settings.query.row_cap``. None means no cap.
ROW_CAP_FROM_SETTINGS: Final = _RowCap.FROM_SETTINGS

#: What ``row_cap`` accepts: a number of rows, None, or ROW_CAP_FROM_SETTINGS.
RowCap: TypeAlias = int | _RowCap | None


@dataclass(frozen=True)
class QueryResult:
    """The answer to one query: column names and DuckDB types, rows, and its freshness."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    as_of_seq: int
    freshness: Freshness

    def as_dicts(self) -> list[dict[str, Any]]:
        """Return the rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_query(
    settings: Settings,
    sql: str,
    *,
    params: Mapping[str, Any] | None = None,
    row_cap: RowCap = ROW_CAP_FROM_SETTINGS,
) -> QueryResult:
    """
    Run one read-only SQL statement over the cache and return its rows.

    ``row_cap`` defaults to ``settings.query.row_cap``; None fetches every row
    (the command line streams them). ``truncated`` says rows were left out.

    Raises:
        QueryError: the statement was refused, failed or ran out of time.
        StoreError: the cache or its replica cannot be read.
    """
    cap = settings.query.row_cap if row_cap is ROW_CAP_FROM_SETTINGS else row_cap
    if isinstance(cap, int) and cap < 0:
        raise UsageError(f"row_cap must be 0 or more, not {cap}")
    connection = open_readonly(settings)
    try:
        statement = check_statement(connection, sql)
        bound = _sandbox.bind_params(statement, params)
        as_of_seq, freshness = _as_of(connection)
        fetched = _sandbox.execute(
            connection,
            statement,
            params=bound,
            row_cap=cap if isinstance(cap, int) else None,
            time_limit_seconds=settings.query.time_limit,
        )
    finally:
        connection.close()

    return QueryResult(
        columns=fetched.columns,
        types=fetched.types,
        rows=fetched.rows,
        truncated=fetched.truncated,
        as_of_seq=as_of_seq,
        freshness=freshness,
    )


def open_readonly(settings: Settings) -> duckdb.DuckDBPyConnection:
    """
    Return a sandboxed DuckDB connection on a fresh replica; the caller closes it.

    The connection reads only the replica and cannot reach files, the network
    or extensions. Statement checks and the time limit are :func:`run_query`'s;
    a caller streaming rows itself should pass its SQL through
    :func:`check_statement` first.
    """
    return _sandbox.open_replica(
        settings.cache.db_path, memory_limit=settings.query.memory_limit
    )


def _as_of(connection: duckdb.DuckDBPyConnection) -> tuple[int, Freshness]:
    """Return the change number the replica holds, and how old it is."""
    try:
        rows = connection.execute(_AS_OF).fetchall()
    except duckdb.Error as exc:
        raise _sandbox.translate_error(exc) from exc
    if not rows:
        return 0, Freshness(None, None, None, None)
    watermark, success_at, attempt_at, outcome, error = rows[0]
    return int(watermark), Freshness(success_at, attempt_at, outcome, error)


_AS_OF: Final = """
SELECT watermark, last_success_at, last_attempt_at, last_attempt_outcome, last_error
FROM cache.replica_meta
"""
