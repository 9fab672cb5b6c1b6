"""Reading sessions, their history and their artifacts from the cache."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from vxcache._time import parse_timestamp
from vxcache.api._context import Context
from vxcache.api._render import envelope
from vxcache.errors import RecordNotFoundError
from vxcache.models import SESSION_BOOKKEEPING, Artifact, Session, SessionVersion
from vxcache.store._reads import SessionFilter

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

MAX_PAGE = 10_000
# Offsets past this are no page anyone wants, and SQLite integers end at 2**63.
MAX_OFFSET = 2**31
_SAFE_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*$")


def _timestamp(value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except OverflowError:
        raise ValueError(f"{value!r} is out of the range of timestamps") from None


# ISO-8601; a timestamp without a zone is taken as UTC, as on the command line.
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]


def _decoded_extra(extra: str | None) -> Any:
    return orjson.loads(extra) if extra else {}


def session_data(session: Session) -> dict[str, Any]:
    """Return a cached session as the API shows it: unknown fields as an object."""
    data = session.model_dump(exclude=set(SESSION_BOOKKEEPING))
    data["extra"] = _decoded_extra(session.extra)
    return data


def _version_data(version: SessionVersion) -> dict[str, Any]:
    data = version.model_dump(exclude={"change_seq"})
    data["extra"] = _decoded_extra(version.extra)
    return data


def _artifact_data(artifact: Artifact) -> dict[str, Any]:
    return artifact.model_dump(exclude={"change_seq"})


def _known_session(context: Context, session_id: str) -> Session:
    session = context.store.session(session_id)
    if session is None:
        raise RecordNotFoundError(
            f"session {session_id} is not in the cache; check the id or POST /v1/sync"
        )
    return session


@router.get("", summary="List cached sessions, newest first")
def list_sessions(
    context: Context,
    status: Annotated[str | None, Query(description="Only this status.")] = None,
    host: Annotated[str | None, Query(description="Only this hostname.")] = None,
    user: Annotated[str | None, Query(description="Only this username.")] = None,
    script: Annotated[str | None, Query(description="Only this script.")] = None,
    since: Annotated[
        Timestamp, Query(description="Started at or after (ISO-8601).")
    ] = None,
    until: Annotated[Timestamp, Query(description="Started before (ISO-8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Return cached sessions matching the filters of ``vxcache sessions list``."""
    where = SessionFilter(
        status=status,
        hostname=host,
        username=user,
        script=script,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    sessions = [session_data(session) for session in context.store.list_sessions(where)]
    page = {
        "sessions": sessions,
        "count": len(sessions),
        "limit": limit,
        "offset": offset,
    }

    return envelope(page, context.freshness())


@router.get("/{session_id}", summary="One cached session")
def show_session(context: Context, session_id: str) -> Response:
    """Return one session as the cache holds it."""
    session = _known_session(context, session_id)
    return envelope(session_data(session), context.freshness())


@router.get("/{session_id}/history", summary="Every observed version of a session")
def session_history(context: Context, session_id: str) -> Response:
    """Return the session's versions, oldest first."""
    versions = context.store.history(session_id)
    if not versions:
        _known_session(context, session_id)
    return envelope([_version_data(v) for v in versions], context.freshness())


@router.get("/{session_id}/artifacts", summary="Artifacts of the session's latest pull")
def list_artifacts(context: Context, session_id: str) -> Response:
    """Return the artifacts of the latest pull; empty when none was pulled yet."""
    found = context.store.artifacts(session_id)
    if not found:
        _known_session(context, session_id)
    return envelope([_artifact_data(a) for a in found], context.freshness())


@router.get(
    "/{session_id}/artifacts/{name:path}",
    summary="One artifact's content",
    response_description="The artifact's bytes, with the content type the node gave.",
)
def get_artifact(context: Context, session_id: str, name: str) -> Response:
    """Return an artifact's raw content; ``name`` may contain slashes."""
    found = {
        artifact.name: artifact for artifact in context.store.artifacts(session_id)
    }
    artifact = found.get(name)
    if artifact is None:
        _known_session(context, session_id)
        raise RecordNotFoundError(
            f"no artifact {name!r} in the latest pull of {session_id}; "
            f"GET /v1/sessions/{session_id}/artifacts lists them"
        )
    content = context.store.blob(artifact.sha256)
    if content is None:
        raise RecordNotFoundError(
            f"the content of artifact {name!r} is missing from the cache"
        )
    media_type = artifact.content_type or "application/octet-stream"
    if not _SAFE_CONTENT_TYPE.match(media_type):
        media_type = "application/octet-stream"
    # The content comes from the node: never let a browser run it on this origin.
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }

    return Response(content, media_type=media_type, headers=headers)
