"""The node's own list route, answered from the cache, so node clients work offline."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from vxcache.api._context import ApiContext, Context
from vxcache.api._render import freshness_headers, render_json
from vxcache.models import Session
from vxcache.records import SessionRecord

router = APIRouter(tags=["node"])

# The node lists a window of a few hundred; this only bounds a corrupt cache.
_MAX_LISTED = 1_000_000


def node_record(session: Session) -> dict[str, Any]:
    """Return a cached session in the node's wire shape, unknown fields merged back."""
    extra = orjson.loads(session.extra) if session.extra else {}
    record = SessionRecord(
        session_id=session.session_id,
        status=session.status,
        hostname=session.hostname,
        username=session.username,
        script=session.script,
        resource_id=session.resource_id,
        started_at=session.started_at,
        ended_at=session.ended_at,
        extra=extra if isinstance(extra, dict) else {},
    )
    return record.as_wire()


def _render_list(context: ApiContext) -> bytes:
    sessions = context.store.recent_sessions(_MAX_LISTED)
    return render_json([node_record(session) for session in sessions])


@router.get(
    "/api/v3/sessions/list",
    summary="The node's list, from the cache",
    response_description="A bare JSON array of sessions, as the node sends it.",
)
def list_sessions_as_node(context: Context) -> Response:
    """
    Answer like the node's list: the sessions it listed last, newest first.

    The body keeps the node's shape, so freshness travels in the headers
    ``X-Vxcache-Synced-At``, ``X-Vxcache-Age-Seconds`` and
    ``X-Vxcache-Node-Reachable``. The rendered body is kept until the cache
    changes: node clients poll this route, and it is the one that must stay fast.
    """
    seq = context.store.change_seq()
    body = context.memo("node-list", seq, lambda: _render_list(context))
    headers = freshness_headers(context.freshness(seq=seq))

    return Response(body, headers=headers, media_type="application/json")
