"""SQL over the cache and the report library, as JSON or streamed CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from vxcache._time import format_timestamp
from vxcache.api._context import ApiContext, Context
from vxcache.api._render import envelope, freshness_headers, plain_value
from vxcache.query import QueryResult, run_query
from vxcache.query.reports import list_reports, run_report

router = APIRouter(tags=["query"])

# Rows per chunk of a streamed CSV answer.
_CSV_CHUNK_ROWS = 1_000
# Query-string keys that are options, not SQL parameters.
_QUERY_OPTIONS = frozenset({"sql", "format"})
_REPORT_OPTIONS = frozenset({"format"})

#: Parameter values are scalars; DuckDB casts them where the SQL says so.
SqlParams = dict[str, str | int | float | bool | None]


class ResultFormat(StrEnum):
    """How a result is answered."""

    json = "json"
    csv = "csv"


class QueryRequest(BaseModel):
    """The body of ``POST /v1/query``."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, description="One read-only DuckDB statement.")
    params: SqlParams | None = Field(
        default=None,
        description='Named parameters: {"status": "failed"} for $status in the SQL.',
    )


FormatOption = Annotated[
    ResultFormat,
    Query(
        alias="format", description="json (default) or csv, streamed for large results."
    ),
]


def _result_data(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": list(result.columns),
        "types": list(result.types),
        "rows": result.rows,
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "as_of_seq": result.as_of_seq,
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        # Naive values (DuckDB TIMESTAMP) are UTC, as in the JSON answers.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return format_timestamp(aware)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=plain_value).decode()
    return plain_value(value)


def _csv_chunks(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for start in range(0, len(rows), _CSV_CHUNK_ROWS):
        writer.writerows(
            [_csv_cell(value) for value in row]
            for row in rows[start : start + _CSV_CHUNK_ROWS]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    tail = buffer.getvalue()
    if tail:
        yield tail


def _answer(context: ApiContext, result: QueryResult, fmt: ResultFormat) -> Response:
    freshness = context.freshness()
    if fmt is ResultFormat.json:
        return envelope(_result_data(result), freshness)
    headers = {
        **freshness_headers(freshness),
        "X-Vxcache-Truncated": str(result.truncated).lower(),
        "X-Vxcache-Row-Count": str(len(result.rows)),
    }
    return StreamingResponse(
        _csv_chunks(result.columns, result.rows),
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )


def _extra_params(request: Request, options: frozenset[str]) -> dict[str, str]:
    return {
        key: value for key, value in request.query_params.items() if key not in options
    }


def _query(
    context: ApiContext, sql: str, params: Mapping[str, Any] | None
) -> QueryResult:
    return run_query(context.settings, sql, params=params)


@router.get("/v1/query", summary="Run read-only SQL over the cache")
def query_get(
    context: Context,
    request: Request,
    sql: Annotated[
        str, Query(min_length=1, description="One read-only DuckDB statement.")
    ],
    fmt: FormatOption = ResultFormat.json,
) -> Response:
    """
    Run SQL with the sandbox, time limit and row cap of ``vxcache query``.

    Every other query-string key is a named parameter: ``?sql=... $status&status=failed``.
    """
    result = _query(context, sql, _extra_params(request, _QUERY_OPTIONS) or None)
    return _answer(context, result, fmt)


@router.post("/v1/query", summary="Run read-only SQL over the cache (JSON body)")
def query_post(
    context: Context,
    body: Annotated[QueryRequest, Body()],
    fmt: FormatOption = ResultFormat.json,
) -> Response:
    """Run ``{"sql": ..., "params": {...}}`` like ``GET /v1/query``."""
    result = _query(context, body.sql, body.params)
    return _answer(context, result, fmt)


@router.get("/v1/reports", summary="The report library")
def reports(context: Context) -> Response:
    """List the built-in and configured reports with their parameters."""
    found = [dataclasses.asdict(report) for report in list_reports(context.settings)]
    return envelope(found, context.freshness())


@router.get("/v1/reports/{name}", summary="Run one report")
def report(
    context: Context, request: Request, name: str, fmt: FormatOption = ResultFormat.json
) -> Response:
    """Run a report; every query-string key but ``format`` is one of its parameters."""
    params = _extra_params(request, _REPORT_OPTIONS)
    result = run_report(context.settings, name, params)
    return _answer(context, result, fmt)
