"""
The SQL sandbox: one read-only statement on a locked-down DuckDB connection.

Three walls, each enough on its own for most escapes:

1. Only one statement, of a reading kind (SELECT, WITH, VALUES, DESCRIBE, SHOW,
   SUMMARIZE, PIVOT, and EXPLAIN of those), is accepted.
2. The replica is attached read-only, and the connection cannot reach files,
   the network or extensions (``enable_external_access`` off, autoloading off,
   no persistent secrets), with ``lock_configuration`` so SQL cannot undo it.
3. A watchdog interrupts a query that runs past ``query.time_limit``.

Every refusal and failure is a :class:`~vxcache.errors.QueryError`; this is the
only place DuckDB's exceptions are translated.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb

from vxcache.errors import QueryError, StoreError
from vxcache.query._files import forget_replica
from vxcache.query._instances import connect, first_line, start
from vxcache.query._replica import refresh_replica
from vxcache.query._watchdog import deadline

logger = logging.getLogger(__name__)

_READING: Final = "SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT or EXPLAIN"
_EXPLAIN = re.compile(
    r"explain\b\s*(?:analy[sz]e\b\s*)?(?:\([^)]*\)\s*)?", re.IGNORECASE
)
_PIVOT = re.compile(r"(?:un)?pivot(?:_wider|_longer)?\b", re.IGNORECASE)
_FIRST_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a statement returned, capped."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def open_replica(
    db_path: Path, *, memory_limit: str, is_sandboxed: bool = True
) -> duckdb.DuckDBPyConnection:
    """
    Refresh the replica of a cache and return a connection on it.

    A replica that cannot be opened (a crash while it was written, say) is
    forgotten and rebuilt once.
    """

    def open_on(replica: Path) -> duckdb.DuckDBPyConnection:
        if is_sandboxed:
            return connect(replica, memory_limit=memory_limit)
        return start(replica, memory_limit=memory_limit, is_sandboxed=False).instance

    info = refresh_replica(db_path)
    try:
        return open_on(info.path)
    except StoreError:
        logger.warning("query replica cannot be opened, rebuilding path=%s", info.path)
        forget_replica(info.path)

    return open_on(refresh_replica(db_path).path)


def check_statement(
    connection: duckdb.DuckDBPyConnection, sql: str
) -> duckdb.Statement:
    """
    Return the one statement in ``sql``, or refuse it.

    Raises:
        QueryError: the text is empty, holds more than one statement, or its
            statement is not a reading one.
    """
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"the query is not valid SQL: {first_line(exc)}") from exc
    except ValueError:
        raise QueryError(
            "the query's statement is of a kind vxcache does not run"
        ) from None
    if not statements:
        raise QueryError("the query is empty; give one SQL statement")
    if len(statements) > 1:
        raise QueryError(
            f"the query holds {len(statements)} statements; vxcache runs one at a time"
        )
    _check_kind(connection, statements[0])

    return statements[0]


def _check_kind(
    connection: duckdb.DuckDBPyConnection, statement: duckdb.Statement
) -> None:
    text = _strip_leading_comments(statement.query)
    try:
        kind = statement.type
    except ValueError:  # a kind newer than this duckdb module's enum
        kind = duckdb.StatementType.INVALID
    if kind == duckdb.StatementType.SELECT:
        return
    if kind == duckdb.StatementType.MULTI and _PIVOT.match(text):
        return  # a PIVOT without IN list runs as several statements
    if kind == duckdb.StatementType.EXPLAIN:
        _check_kind(connection, _explained(connection, text))
        return
    word = _FIRST_WORD.match(text)
    keyword = word[0].upper() if word else kind.name
    raise QueryError(
        f"{keyword} statements are refused: vxcache's SQL is read-only; use {_READING}"
    )


def _explained(connection: duckdb.DuckDBPyConnection, text: str) -> duckdb.Statement:
    prefix = _EXPLAIN.match(text)
    try:
        inner = connection.extract_statements(text[prefix.end() :]) if prefix else []
    except (duckdb.Error, ValueError):
        inner = []
    if len(inner) != 1:
        raise QueryError("EXPLAIN of anything but one reading statement is refused")
    return inner[0]


def _strip_leading_comments(text: str) -> str:
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            _, _, text = text.partition("\n")
        elif text.startswith("/*"):
            _, _, text = text.partition("*/")
        else:
            return text


def bind_params(
    statement: duckdb.Statement, params: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Return the parameters to pass, after checking they match the statement's."""
    wanted = set(statement.named_parameters)
    given = dict(params or {})
    missing = sorted(wanted - given.keys())
    if missing:
        raise QueryError(f"the query uses ${missing[0]} but no value was given for it")
    unused = sorted(given.keys() - wanted)
    if unused:
        raise QueryError(f"the parameter {unused[0]!r} is not used by the query")
    return given or None


def execute(
    connection: duckdb.DuckDBPyConnection,
    statement: duckdb.Statement,
    *,
    params: dict[str, Any] | None,
    row_cap: int | None,
    time_limit_seconds: float,
) -> Fetched:
    """
    Run a checked statement and fetch at most ``row_cap`` rows.

    Raises:
        QueryError: DuckDB failed, or the query ran past the time limit.
    """
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        connection.interrupt()

    try:
        with deadline(time_limit_seconds, interrupt):
            connection.execute(statement, params)
            description = connection.description or []
            if row_cap is None:
                rows = connection.fetchall()
            else:
                rows = connection.fetchmany(row_cap + 1)
                connection.abort()  # stop producing the rows past the cap
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise QueryError(
                f"query ran past the time limit of {time_limit_seconds:g}s (query.time_limit)"
            ) from exc
        raise translate_error(exc) from exc
    truncated = row_cap is not None and len(rows) > row_cap

    return Fetched(
        columns=[str(column[0]) for column in description],
        types=[str(column[1]) for column in description],
        rows=rows[:row_cap] if truncated else rows,
        truncated=truncated,
    )


def translate_error(exc: duckdb.Error) -> QueryError:
    """Return the QueryError that tells a user why DuckDB refused or failed."""
    message = first_line(exc)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(
            f"the query was refused because it reaches outside the cache: {message}"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError(
            f"the query ran out of memory; raise query.memory_limit: {message}"
        )
    if "read-only" in message:
        return QueryError(
            f"the query tried to write, and vxcache's SQL is read-only: {message}"
        )
    return QueryError(f"the query failed: {message}")
