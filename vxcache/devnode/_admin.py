"""
Admin routes under /_admin/: faults, counters, settings and scripted sessions.

They need no token: they exist for tests and demos on 127.0.0.1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vxcache.devnode._config import Faults
from vxcache.devnode._state import State
from vxcache.devnode._store import SessionConflictError
from vxcache.devnode._time import now_nanos

router = APIRouter(prefix="/_admin", tags=["admin"])


JsonObject = Annotated[dict[str, Any], Body()]


class SettingsUpdate(BaseModel):
    """
    A subset of the run-time settings to change.
    """

    model_config = ConfigDict(extra="forbid")

    window: int | None = Field(default=None, ge=0)
    time_style: Literal["mixed", "z"] | None = None
    list_shape: Literal["array", "wrapped"] | None = None
    state_as_string: bool | None = None
    next_apply_outcome: Literal["seeded", "succeeded", "failed"] | None = None
    rate_per_minute: float | None = Field(default=None, ge=0)
    transition_seconds: float | None = Field(default=None, ge=0)
    state_bytes: int | None = Field(default=None, ge=0)


def _unprocessable(exc: ValueError) -> HTTPException:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_context=False)
        return HTTPException(status_code=422, detail=errors)
    return HTTPException(status_code=422, detail=str(exc))


@router.get("/health")
async def read_health(state: State) -> dict[str, Any]:
    """
    Say the devnode is up and how many sessions it holds.
    """
    return {"ok": True, "sessions": len(state.store)}


@router.get("/faults")
async def read_faults(state: State) -> dict[str, object]:
    """
    Return the current faults, with what is left of each count.
    """
    return state.faults.to_dict()


@router.put("/faults")
async def replace_faults(state: State, data: JsonObject) -> dict[str, object]:
    """
    Replace all faults; fields left out take their healthy default.
    """
    try:
        state.faults = Faults.from_dict(data)
    except ValueError as exc:
        raise _unprocessable(exc) from exc
    return state.faults.to_dict()


@router.post("/reset")
async def reset(state: State) -> dict[str, object]:
    """
    Clear the faults and the request counters.
    """
    state.reset()
    return {"faults": state.faults.to_dict(), "requests": state.request_counts}


@router.get("/requests")
async def read_requests(state: State) -> dict[str, int]:
    """
    Return how many requests reached each node route, counted on arrival.
    """
    return dict(state.request_counts)


@router.get("/settings")
async def read_settings(state: State) -> dict[str, Any]:
    """
    Return the run-time settings.
    """
    return state.settings.to_dict()


@router.put("/settings")
async def update_settings(state: State, update: SettingsUpdate) -> dict[str, Any]:
    """
    Change some run-time settings; the others stay.
    """
    state.update_settings(update.model_dump(exclude_none=True))
    return state.settings.to_dict()


@router.post("/sessions", status_code=201)
async def create_session(state: State, record: JsonObject) -> dict[str, Any]:
    """
    Add a session from a partial record and return it as list sends it.
    """
    try:
        return state.store.create(record, now_nanos=now_nanos())
    except SessionConflictError as exc:
        raise HTTPException(status_code=409, detail=exc.detail) from exc
    except ValueError as exc:
        raise _unprocessable(exc) from exc


@router.patch("/sessions/{session_id}")
async def patch_session(
    state: State, session_id: str, changes: JsonObject
) -> dict[str, Any]:
    """
    Change fields of a session (status, times, any field) and return it.
    """
    try:
        return state.store.patch(session_id, changes)
    except ValueError as exc:
        raise _unprocessable(exc) from exc


@router.post("/sessions/{session_id}/purge")
async def purge_session(state: State, session_id: str) -> dict[str, Any]:
    """
    Forget a session: show and pull answer 404 and list drops it.
    """
    state.store.purge(session_id)
    return {"session_id": session_id, "purged": True}
