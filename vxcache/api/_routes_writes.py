"""Apply and delete, passed through to the node exactly as ``vxcache.writes`` does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StrictBool

from vxcache.api._context import ApiContext, Context
from vxcache.api._render import envelope
from vxcache.client import NodeClient
from vxcache.errors import UpstreamError, UpstreamUnavailableError, WritesDisabledError
from vxcache.writes import WriteResult, apply_session, delete_session

router = APIRouter(prefix="/v1/sessions", tags=["writes"])

_WRITE_RESPONSES: dict[int | str, dict[str, str]] = {
    403: {"description": "Writes are off (api.allow_writes = false)."},
    409: {"description": "Refused before anything was sent (offline)."},
    502: {"description": "The node refused, or its answer was lost."},
    503: {"description": "The node could not be reached; nothing was sent."},
}


class DeleteOptions(BaseModel):
    """The body of a delete."""

    model_config = ConfigDict(extra="forbid")

    force: StrictBool = False


@contextmanager
def _node_client(context: ApiContext) -> Iterator[NodeClient | None]:
    """Yield a client (None offline) and remember whether the node answered."""
    if not context.settings.api.allow_writes:
        raise WritesDisabledError(
            "writes are off on this server (api.allow_writes = false); "
            "use `vxcache apply` or `vxcache delete` where writes are allowed"
        )
    if context.settings.offline:
        yield None
        return
    with NodeClient(context.settings.node) as client:
        try:
            yield client
        except UpstreamUnavailableError:
            context.note_contact(reachable=False)
            raise
        except UpstreamError:
            context.note_contact(reachable=True)
            raise
        context.note_contact(reachable=True)


def _answer(context: ApiContext, result: WriteResult) -> Response:
    return envelope(dataclasses.asdict(result), context.freshness())


@router.post(
    "/{session_id}/apply",
    summary="Apply a session's saved plan",
    responses=_WRITE_RESPONSES,
)
def apply(context: Context, session_id: str) -> Response:
    """Send the apply once, audit it, and refresh the session (see ``vxcache apply``)."""
    with _node_client(context) as client:
        result = apply_session(context.store, client, context.settings, session_id)
    return _answer(context, result)


@router.post(
    "/{session_id}/delete",
    summary="Tear down a session's resource",
    responses=_WRITE_RESPONSES,
)
def delete(
    context: Context,
    session_id: str,
    options: Annotated[DeleteOptions | None, Body()] = None,
) -> Response:
    """Send the delete once (``force`` passes the node's confirmation), audit it, refresh."""
    force = options.force if options is not None else False
    with _node_client(context) as client:
        result = delete_session(
            context.store, client, context.settings, session_id, force=force
        )
    return _answer(context, result)
