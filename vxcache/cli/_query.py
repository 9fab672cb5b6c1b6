"""Analytical commands: query, report and export, all answered by DuckDB."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click

from vxcache.cli._app import App, command_with_options, pass_app
from vxcache.cli._group import cli
from vxcache.cli._output import print_rows, render_rows
from vxcache.errors import RecordNotFoundError, UsageError
from vxcache.query import QueryResult, run_query
from vxcache.query.export import export_snapshot
from vxcache.query.reports import list_reports, run_report

output_option = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the rows to a .parquet or .csv file (parquet or csv by its suffix).",
)


def _params(
    _context: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        if key in parsed:
            raise click.BadParameter(f"{key!r} is given twice")
        parsed[key] = value
    return parsed


def _emit(app: App, result: QueryResult, output: Path | None) -> None:
    if output is None:
        print_rows(result.columns, result.rows, fmt=app.fmt)
    else:
        _write_file(result, output)
        app.note(f"wrote {len(result.rows)} rows to {output}")
    if result.truncated:
        app.note("warning: the answer was truncated at the row cap")
    app.note(result.freshness.describe())


def _write_file(result: QueryResult, output: Path) -> None:
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise UsageError(
            f"cannot write {output.name}: use a .parquet or .csv file name"
        )
    try:
        if suffix == ".csv":
            text = render_rows(result.columns, result.rows, fmt="csv")
            output.write_text(text + "\n", encoding="utf-8")
        else:
            _write_parquet(result, output)
        output.chmod(0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _write_parquet(result: QueryResult, output: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[Any]] = [
        [row[index] for row in result.rows] for index in range(len(result.columns))
    ]
    table = pa.table(dict(zip(result.columns, columns, strict=True)))
    pq.write_table(table, output)


@command_with_options(cli)
@click.argument("sql", required=False)
@click.option(
    "--file", "sql_file", type=click.File("r"), help="Read the SQL from a file."
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    callback=_params,
    metavar="KEY=VALUE",
    help="A named parameter, used as $KEY in the SQL.",
)
@output_option
@pass_app
def query(
    app: App,
    sql: str | None,
    sql_file: IO[str] | None,
    params: dict[str, str],
    output: Path | None,
) -> None:
    """
    Run one read-only DuckDB query over the cache ("-" reads it from stdin).

    Example: vxcache query "SELECT status, count(*) FROM sessions GROUP BY 1"
    """
    if sql_file is not None:
        sql = sql_file.read()
    elif sql == "-" or (sql is None and not sys.stdin.isatty()):
        sql = sys.stdin.read()
    if not sql or not sql.strip():
        raise UsageError("give the SQL as an argument, with --file, or on stdin")
    _emit(app, run_query(app.settings, sql, params=params, row_cap=None), output)


@command_with_options(cli)
@click.argument("name", required=False)
@click.option(
    "--param",
    "params",
    multiple=True,
    callback=_params,
    metavar="KEY=VALUE",
    help="A report parameter; see --list for each report's parameters.",
)
@click.option(
    "--list", "show_list", is_flag=True, help="List the reports and their parameters."
)
@output_option
@pass_app
def report(
    app: App,
    name: str | None,
    params: dict[str, str],
    show_list: bool,
    output: Path | None,
) -> None:
    """
    Run a ready-made report, or list them with --list.

    Example: vxcache report failure-rate --param days=30
    """
    if show_list or name is None:
        rows = [
            (r.name, r.title, ", ".join(f"{p.name}={p.default}" for p in r.params))
            for r in list_reports(app.settings)
        ]
        print_rows(("report", "title", "parameters"), rows, fmt=app.fmt)
        return
    try:
        result = run_report(app.settings, name, params, row_cap=None)
    except RecordNotFoundError as exc:
        raise UsageError(str(exc)) from None  # a name on the command line: exit 2
    _emit(app, result, output)


@command_with_options(cli, name="export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@pass_app
def export_command(app: App, directory: Path) -> None:
    """
    Write every public relation and a manifest into DIRECTORY (--format parquet or csv).

    Example: vxcache export ./snapshot --format parquet
    """
    if app.fmt not in ("table", "parquet", "csv"):
        raise UsageError(f"export writes parquet or csv files, not {app.fmt}")
    fmt = "csv" if app.fmt == "csv" else "parquet"
    manifest = export_snapshot(app.settings, directory, fmt=fmt)
    app.note(f"wrote {len(manifest.files)} relations to {directory}")
    app.note(manifest.freshness.describe())
