"""Write a session's artifacts into a folder, refusing names that would land outside it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vxcache.errors import RecordNotFoundError
from vxcache.store import Store


@dataclass
class ExportReport:
    """Which artifacts were written, and which were refused and why."""

    written: list[Path] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def safe_target(directory: Path, name: str) -> Path:
    """
    Return where artifact ``name`` goes inside ``directory``.

    Names come from the node and are untrusted: absolute paths, ``..``, empty
    parts, backslashes, NUL and links on the way are refused.

    Raises:
        ValueError: the name would land outside the folder.
    """
    if not name or "\x00" in name or "\\" in name:
        raise ValueError("empty, or holds a NUL or backslash")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("~"):
        raise ValueError("absolute path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError("has '..', '.' or an empty part")
    root = directory.resolve()
    target = root.joinpath(*pure.parts)
    walked = root
    for part in pure.parts:
        walked = walked / part
        if walked.is_symlink():
            raise ValueError("goes through a symbolic link")
    if root not in target.resolve().parents:
        raise ValueError("resolves outside the folder")

    return target


def export_artifacts(
    store: Store, session_id: str, directory: Path, *, overwrite: bool = False
) -> ExportReport:
    """Write the artifacts of the session's latest pull; report refused names."""
    found = store.artifacts(session_id)
    if not found:
        raise RecordNotFoundError(
            f"session {session_id} has no pulled artifacts in the cache"
        )
    directory.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    for artifact in found:
        try:
            target = safe_target(directory, artifact.name)
        except ValueError as exc:
            report.refused.append((artifact.name, str(exc)))
            continue
        if target.exists() and not overwrite:
            report.refused.append((artifact.name, "exists; use --force to overwrite"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(target, flags, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(store.blob(artifact.sha256) or b"")
        report.written.append(target)

    return report
