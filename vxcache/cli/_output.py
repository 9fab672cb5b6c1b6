"""Print rows on stdout as a table, JSON, JSON lines, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from vxcache._time import format_timestamp
from vxcache.errors import UsageError

READ_FORMATS = ("table", "json", "jsonl", "csv", "markdown")
#: What --format accepts: the read formats, and parquet where a file is written.
FORMATS = (*READ_FORMATS, "parquet")
# Timestamps go through _plain so they print in UTC with a Z, as interface.md says.
_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _text(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, dict | list):
        return orjson.dumps(plain).decode()
    return str(plain)


def _shown(value: Any) -> str:
    """Return a cell as a person reads it: floats to six significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.6g}"
        # Large numbers in full rather than in exponent form.
        return f"{value:.1f}" if "e" in text and abs(value) >= 1 else text
    return _text(value)


def _json_default(value: Any) -> Any:
    plain = _plain(value)
    if plain is value:
        return str(value)
    return plain


def render_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, fmt: str
) -> str:
    """Return rows in one of the read formats, ready for stdout."""
    if fmt == "json":
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        return orjson.dumps(
            objects, default=_json_default, option=_JSON_OPTIONS
        ).decode()
    if fmt == "jsonl":
        return "".join(
            orjson.dumps(
                dict(zip(columns, row, strict=True)),
                default=_json_default,
                option=orjson.OPT_PASSTHROUGH_DATETIME,
            ).decode()
            + "\n"
            for row in rows
        ).rstrip("\n")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(value) for value in row] for row in rows)
        return buffer.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            cells = (
                _shown(value).replace("|", "\\|").replace("\n", " ") for value in row
            )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    if fmt == "parquet":
        raise UsageError("parquet output needs a file: use -o FILE.parquet")
    return _render_table(columns, rows)


def _render_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    table = Table(*columns, show_edge=False, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*(_shown(value) for value in row))
    console = Console(file=io.StringIO(), width=max(80, 200), color_system=None)
    console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return str(output).rstrip("\n")


def print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, fmt: str
) -> None:
    """Print rows on stdout."""
    text = render_rows(columns, rows, fmt=fmt)
    if text:
        sys.stdout.write(text + "\n")


def print_record(record: dict[str, Any], *, fmt: str) -> None:
    """Print one record: key/value lines as a table, or one object in JSON."""
    if fmt == "json":
        sys.stdout.write(
            orjson.dumps(record, default=_json_default, option=_JSON_OPTIONS).decode()
            + "\n"
        )
        return
    if fmt in ("jsonl", "csv", "markdown"):
        print_rows(list(record), [list(record.values())], fmt=fmt)
        return
    print_rows(
        ["field", "value"], [(key, value) for key, value in record.items()], fmt=fmt
    )
