"""
The devnode's FastAPI app: the five node routes behind a bearer token, the
admin routes, the fault gate in front of them all, and `serve` to run it.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

import orjson
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from vxcache.devnode._admin import router as admin_router
from vxcache.devnode._config import DevnodeConfig
from vxcache.devnode._faults import FaultGate
from vxcache.devnode._state import DevnodeState, State
from vxcache.devnode._store import SessionConflictError, SessionNotFoundError
from vxcache.devnode._time import now_nanos


class OrjsonResponse(Response):
    """
    A JSON response serialized by orjson (fast, and able to embed ready JSON).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """
        Serialize the content; bytes are taken as JSON already.
        """
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


class SessionRef(BaseModel):
    """
    The body of show, pull and apply.
    """

    session_id: str


class DeleteRequest(SessionRef):
    """
    The body of delete.
    """

    force: bool = False


def require_token(request: Request) -> None:
    """
    Refuse a request without the devnode's bearer token, as FastAPI's HTTPBearer does.
    """
    state: DevnodeState = request.app.state.devnode
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not credentials:
        raise HTTPException(
            status_code=401, detail="Not authenticated", headers=challenge
        )
    if not secrets.compare_digest(credentials.encode(), state.config.token.encode()):
        raise HTTPException(status_code=401, detail="Invalid token", headers=challenge)


node_router = APIRouter(dependencies=[Depends(require_token)], tags=["node"])


@node_router.get("/api/v3/sessions/list", response_class=OrjsonResponse)
async def list_sessions(state: State) -> OrjsonResponse:
    """
    Return the window of most recent sessions, newest first.
    """
    return OrjsonResponse(state.store.list_body())


@node_router.post("/api/v2/tenant/sessions/show", response_class=OrjsonResponse)
async def show_session(state: State, body: SessionRef) -> OrjsonResponse:
    """
    Return one session with the fields only show sends.
    """
    return OrjsonResponse(state.store.show(body.session_id))


@node_router.post("/api/v2/tenant/sessions/pull", response_class=OrjsonResponse)
async def pull_session(state: State, body: SessionRef) -> OrjsonResponse:
    """
    Return the session's Terraform state and artifacts.
    """
    return OrjsonResponse(state.store.pull(body.session_id, now_nanos=now_nanos()))


@node_router.post("/api/v2/tenant/sessions/apply", response_class=OrjsonResponse)
async def apply_session(state: State, body: SessionRef) -> OrjsonResponse:
    """
    Start applying a planned session.
    """
    return OrjsonResponse(state.store.apply(body.session_id, now_nanos=now_nanos()))


@node_router.post("/api/v2/tenant/sessions/delete", response_class=OrjsonResponse)
async def delete_session(state: State, body: DeleteRequest) -> OrjsonResponse:
    """
    Start tearing down a session's resource.
    """
    answer = state.store.delete(
        body.session_id, force=body.force, now_nanos=now_nanos()
    )
    return OrjsonResponse(answer)


async def _not_found(request: Request, exc: Exception) -> Response:
    detail = exc.detail if isinstance(exc, SessionNotFoundError) else "Not Found"
    return JSONResponse({"detail": detail}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> Response:
    detail = exc.detail if isinstance(exc, SessionConflictError) else "Conflict"
    return JSONResponse({"detail": detail}, status_code=409)


class DevnodeApp(FastAPI):
    """
    The FastAPI app with the fault gate outside everything else.

    The gate must see uvicorn's own `send` to drop connections, so it wraps
    the app here rather than sitting in the middleware stack.
    """

    fault_gate: FaultGate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI call through the fault gate.
        """
        await self.fault_gate(scope, receive, send, super().__call__)


def create_app(config: DevnodeConfig) -> FastAPI:
    """
    Build a devnode app; `app.state.devnode` is its live state.

    Example:
        >>> app = create_app(DevnodeConfig(sessions=100))
    """
    state = DevnodeState(config)
    app = DevnodeApp(title="vxcache devnode", version="1")
    app.state.devnode = state
    app.fault_gate = FaultGate(state)
    app.include_router(node_router)
    app.include_router(admin_router)
    app.add_exception_handler(SessionNotFoundError, _not_found)
    app.add_exception_handler(SessionConflictError, _conflict)

    return app


def serve(
    config: DevnodeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    show_token: bool = True,
) -> None:
    """
    Run a devnode with uvicorn until interrupted; prints its URL first.

    The banner shows the token too, unless ``show_token`` is false (the caller
    chose it, so there is nothing to learn from seeing it).

    Example:
        >>> serve(DevnodeConfig(seed=3), port=8701)  # doctest: +SKIP
    """
    app = create_app(config)
    url = f"http://{host}:{port}"
    token = config.token if show_token else "(as given)"
    print(
        f"devnode: {url} token={token} sessions={config.sessions} "
        f"window={config.window} seed={config.seed}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
