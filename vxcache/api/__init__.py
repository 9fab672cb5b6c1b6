"""
The local HTTP API of ``vxcache serve``: thin routes over the store, query and writes.

Every JSON answer is an envelope, ``{"ok": true, "data": ..., "freshness": ...}``
or ``{"ok": false, "error": {"type", "message", "details"}}``, with a status
that matches. ``GET /api/v3/sessions/list`` is the exception: it keeps the
node's own shape so node clients can point at vxcache.

Example:
    >>> app = create_app(settings)
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from vxcache import __version__
from vxcache._units import format_duration
from vxcache.api import (
    _routes_node,
    _routes_query,
    _routes_sessions,
    _routes_status,
    _routes_writes,
)
from vxcache.api._auth import BearerAuth, check_exposure, is_loopback
from vxcache.api._context import ApiContext
from vxcache.api._errors import install_error_handlers
from vxcache.config import Settings
from vxcache.errors import WritesDisabledError
from vxcache.schedule import build_scheduler, claim_schedule, stop_scheduler

__all__ = ["WritesDisabledError", "check_exposure", "create_app", "is_loopback"]

logger = logging.getLogger(__name__)

_ROUTERS = (
    _routes_status.router,
    _routes_node.router,
    _routes_sessions.router,
    _routes_query.router,
    _routes_writes.router,
)


def create_app(settings: Settings, *, schedule: bool = False) -> FastAPI:
    """
    Build the API over the cache the settings name, opening (and migrating) it.

    With ``schedule``, the app's lifespan also runs the periodic sync
    (``sync.interval``) in a background scheduler and stops it on shutdown;
    serve such an app with exactly one worker, or the scheduler runs twice.
    """
    context = ApiContext(settings)
    app = FastAPI(
        title="vxcache",
        version=__version__,
        summary="A local, offline-capable mirror of a deployment node's sessions.",
        lifespan=_lifespan(context, schedule=schedule),
    )
    app.state.vxcache = context
    install_error_handlers(app)
    for router in _ROUTERS:
        app.include_router(router)

    token = settings.api.token.get_secret_value()
    if token:
        app.add_middleware(BearerAuth, token=token)
    if settings.api.cors_origins:
        # Added last so it runs first: preflight requests carry no token.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    return app


def _lifespan(
    context: ApiContext, *, schedule: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler, claim = None, None
        if schedule and context.settings.offline:
            logger.info("scheduler off: serving the cache offline")
        elif schedule and (claim := claim_schedule(context.settings)) is None:
            logger.warning(
                "scheduler off: another vxcache process already syncs %s on a "
                "schedule; this one only serves",
                context.settings.cache.db_path,
            )
        elif schedule:
            scheduler = build_scheduler(
                context.settings, blocking=False, after_sync=context.after_sync
            )
            scheduler.start()
            logger.info(
                "scheduler started interval=%s",
                format_duration(context.settings.sync.interval),
            )
        try:
            yield
        finally:
            if scheduler is not None:
                logger.info("scheduler stopping; a running sync ends early")
                await anyio.to_thread.run_sync(stop_scheduler, scheduler)
            if claim is not None:
                claim.release()
            context.close()

    return lifespan
