"""
Portable snapshots: every public relation as a Parquet or CSV file, and a manifest.

All files come from one replica file, so together they show one committed
state of the cache. ``manifest.json`` says which one.

Example:
    >>> manifest = export_snapshot(settings, Path("snapshot"), fmt="parquet")
    >>> manifest.row_counts["sessions"]
    300
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson

from vxcache import __version__
from vxcache._time import format_timestamp, utc_now
from vxcache.config import Settings
from vxcache.errors import UsageError
from vxcache.freshness import Freshness
from vxcache.query import _sandbox
from vxcache.query._schema import PUBLIC_RELATIONS, quote_literal

FORMATS: Final = ("parquet", "csv")
_COPY_OPTIONS: Final = {
    "parquet": "FORMAT parquet, COMPRESSION zstd",
    "csv": "FORMAT csv, HEADER true",
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """
    What a snapshot holds and which state of the cache it shows.

    ``as_of`` is when the snapshot was written, ``synced_at`` when the node
    was last mirrored successfully before it (None if never).
    """

    as_of: str
    synced_at: str | None
    change_seq: int
    schema_revision: str
    vxcache_version: str
    format: str
    files: dict[str, str]
    row_counts: dict[str, int]
    freshness: Freshness = field(compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        """Return the manifest as ``manifest.json`` stores it."""
        document = asdict(self)
        del document["freshness"]  # its one fact a snapshot needs is synced_at
        return document


def export_snapshot(
    settings: Settings, directory: Path, *, fmt: str = "parquet"
) -> Manifest:
    """
    Write every public relation to ``directory`` and a ``manifest.json`` beside them.

    Files of the same names are replaced; other files are left alone.

    Raises:
        UsageError: the format is unknown, or the folder cannot be written.
        StoreError: the cache or its replica cannot be read.
    """
    if fmt not in FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the export folder {directory}: {exc}") from exc

    instance = _sandbox.open_replica(
        settings.cache.db_path,
        memory_limit=settings.query.memory_limit,
        is_sandboxed=False,
    )
    try:
        ((change_seq, revision, *fresh),) = instance.execute(
            "SELECT watermark, revision, last_success_at, last_attempt_at, "
            "last_attempt_outcome, last_error FROM cache.replica_meta"
        ).fetchall()
        files = {relation: f"{relation}.{fmt}" for relation in PUBLIC_RELATIONS}
        counts = {
            relation: _copy(instance, relation, directory / files[relation], fmt=fmt)
            for relation in PUBLIC_RELATIONS
        }
    except duckdb.Error as exc:
        raise UsageError(f"writing the export to {directory} failed: {exc}") from exc
    finally:
        instance.close()

    freshness = Freshness(*fresh)
    manifest = Manifest(
        as_of=str(format_timestamp(utc_now())),
        synced_at=format_timestamp(freshness.last_success_at),
        change_seq=int(change_seq),
        schema_revision=str(revision),
        vxcache_version=__version__,
        format=fmt,
        files=files,
        row_counts=counts,
        freshness=freshness,
    )
    document = orjson.dumps(manifest.as_json(), option=orjson.OPT_INDENT_2)
    try:
        (directory / "manifest.json").write_bytes(document + b"\n")
        # A snapshot holds the whole cache, artifacts' metadata included.
        for name in (*files.values(), "manifest.json"):
            (directory / name).chmod(0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {directory / 'manifest.json'}: {exc}") from exc

    return manifest


def _copy(
    instance: duckdb.DuckDBPyConnection, relation: str, target: Path, *, fmt: str
) -> int:
    statement = (
        f"COPY (SELECT * FROM {relation}) TO {quote_literal(str(target))} "
        f"({_COPY_OPTIONS[fmt]})"
    )
    ((count,),) = instance.execute(statement).fetchall()
    return int(count)
