"""
The report library: named, commented SQL files run with named parameters.

A report is one ``.sql`` file. Its leading comment block gives a one-line
title, a description, and one line per parameter::

    -- Failure rate by script
    --
    -- Which share of each script's settled sessions failed.
    --
    -- param: days = 90  (only sessions started in the last N days)
    SELECT ... WHERE started_at >= current_date - CAST($days AS INTEGER) + 1

Built-in reports ship in ``vxcache/reports``; ``*.sql`` files in
``query.reports_dir`` are added, and replace a built-in of the same name.
Parameter values arrive as strings, so reports cast them explicitly.

Example:
    >>> result = run_report(settings, "failure-rate", {"days": "30"})
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

from vxcache.config import Settings
from vxcache.errors import RecordNotFoundError, UsageError
from vxcache.query import ROW_CAP_FROM_SETTINGS, QueryResult, RowCap, run_query

logger = logging.getLogger(__name__)

_PARAM: Final = re.compile(
    r"^param:\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<default>.*?)\s*(?:\((?P<meaning>.*)\))?\s*$"
)


@dataclass(frozen=True, slots=True)
class ReportParam:
    """One parameter of a report, with its default as text."""

    name: str
    default: str
    meaning: str


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """A report: its name, what it tells, its parameters and its SQL."""

    name: str
    title: str
    description: str
    params: tuple[ReportParam, ...]
    sql: str
    source: str
    is_builtin: bool


def list_reports(settings: Settings) -> list[ReportInfo]:
    """Return every report, built-in and the user's, sorted by name."""
    reports = {report.name: report for report in _builtin_reports()}
    reports.update((report.name, report) for report in _user_reports(settings))
    return [reports[name] for name in sorted(reports)]


def run_report(
    settings: Settings,
    name: str,
    params: Mapping[str, str] | None = None,
    *,
    row_cap: RowCap = ROW_CAP_FROM_SETTINGS,
) -> QueryResult:
    """
    Run a report by name; parameters not given take their defaults.

    Raises:
        RecordNotFoundError: no report has that name.
        UsageError: a parameter the report does not declare was given.
        QueryError: the report's SQL failed or ran out of time.
    """
    reports = {report.name: report for report in list_reports(settings)}
    report = reports.get(name)
    if report is None:
        raise RecordNotFoundError(
            f"there is no report named {name!r}; the reports are: {', '.join(sorted(reports))}"
        )
    values = {param.name: param.default for param in report.params}
    for key, value in (params or {}).items():
        if key not in values:
            known = ", ".join(values) or "none"
            raise UsageError(
                f"report {name!r} has no parameter {key!r}; its parameters are: {known}"
            )
        values[key] = value

    return run_query(settings, report.sql, params=values, row_cap=row_cap)


def parse_report(name: str, text: str, *, source: str, is_builtin: bool) -> ReportInfo:
    """Read a report's title, description and parameters from its header comment."""
    title = ""
    description: list[str] = []
    params: list[ReportParam] = []
    for line in _header_lines(text):
        found = _PARAM.match(line)
        if found:
            params.append(
                ReportParam(found["name"], found["default"], found["meaning"] or "")
            )
        elif not title:
            title = line
        elif line or description:
            description.append(line)

    return ReportInfo(
        name=name,
        title=title or name,
        description="\n".join(description).strip(),
        params=tuple(params),
        sql=text,
        source=source,
        is_builtin=is_builtin,
    )


def _header_lines(text: str) -> Iterable[str]:
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("--"):
            if line:
                return
            continue
        yield line[2:].strip()


def _builtin_reports() -> list[ReportInfo]:
    folder = resources.files("vxcache") / "reports"
    return [
        parse_report(
            entry.name.removesuffix(".sql"),
            entry.read_text(encoding="utf-8"),
            source=f"vxcache/reports/{entry.name}",
            is_builtin=True,
        )
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]


def _user_reports(settings: Settings) -> list[ReportInfo]:
    folder = settings.query.reports_dir
    if folder is None:
        return []
    folder = folder.expanduser()
    if not folder.is_dir():
        logger.warning("query.reports_dir is not a folder, ignored path=%s", folder)
        return []
    reports = []
    for path in sorted(folder.glob("*.sql")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the report {path}: {exc}") from exc
        reports.append(
            parse_report(path.stem, text, source=str(path), is_builtin=False)
        )
    return reports
