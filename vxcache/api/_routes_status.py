"""Health, status and syncs on demand."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter
from fastapi.responses import Response

from vxcache.api._context import Context
from vxcache.api._render import envelope, render_json

router = APIRouter(tags=["status"])


def _safe_url(url: str) -> str:
    """Return a URL without user info, query or fragment: nothing secret in a status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@router.get("/healthz", summary="Liveness, without a token")
def healthz() -> Response:
    """Answer that the server runs; says nothing about the cache."""
    body = render_json({"ok": True, "data": {"status": "ok"}})
    return Response(body, media_type="application/json")


@router.get(
    "/v1/status", summary="Last sync, its age, counts and whether the node answered"
)
def status(context: Context) -> Response:
    """Return what ``vxcache status`` shows, from the cache (the node is not called)."""
    found = context.store.freshness()
    data = {
        "cache": str(context.settings.cache.db_path),
        "node": _safe_url(context.settings.node.url),
        "offline": context.settings.offline,
        "writes_enabled": context.settings.api.allow_writes,
        "sync_running": context.is_sync_running(),
        "last_sync_at": found.last_success_at,
        "last_attempt_at": found.last_attempt_at,
        "last_attempt_outcome": found.last_attempt_outcome,
        "last_error": found.last_error,
        **context.store.counts(),
    }

    return envelope(data, context.freshness())


@router.post(
    "/v1/sync",
    status_code=202,
    summary="Start a sync now",
    response_description="The sync started; GET /v1/status shows when it is done.",
    responses={409: {"description": "A sync is running already."}},
)
def start_sync(context: Context) -> Response:
    """Start a sync in the background and answer at once; 409 while one runs."""
    context.start_sync()
    return envelope({"started": True}, context.freshness(), status_code=202)
