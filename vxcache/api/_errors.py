"""
The one error handler: every failure becomes the same JSON envelope.

    {"ok": false, "error": {"type", "message", "details": [...]}, "freshness": {...}}

The HTTP status always matches: a :class:`~vxcache.errors.VxcacheError` answers
its ``http_status``, a validation problem 422 with every problem in ``details``,
a framework error (unknown route, wrong method) its own status, and anything
unexpected 500 with a generic message and a logged traceback. ``freshness`` is
added once the caller has passed the token check.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from vxcache.api._render import render_json
from vxcache.errors import VxcacheError

logger = logging.getLogger(__name__)


def error_body(
    error_type: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return the failure envelope, without freshness."""
    error = {"type": error_type, "message": message, "details": details or []}
    return {"ok": False, "error": error}


def error_response(
    status: int, body: dict[str, Any], *, headers: Mapping[str, str] | None = None
) -> Response:
    """Render a failure envelope."""
    return Response(
        render_json(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def handle_error(request: Request, exc: Exception) -> Response:
    """
    Answer any failure of a request with the error envelope and its status.

    A plain function on purpose: Starlette runs it in the thread pool, so the
    freshness read never blocks the event loop.
    """
    status, body, headers = describe_error(request, exc)
    context = getattr(request.app.state, "vxcache", None)
    if context is not None and context.is_authorized(request):
        body["freshness"] = context.freshness_or_none()

    return error_response(status, body, headers=headers)


def describe_error(
    request: Request, exc: Exception
) -> tuple[int, dict[str, Any], Mapping[str, str] | None]:
    """Return the status, envelope and extra headers for one failure."""
    if isinstance(exc, VxcacheError):
        if exc.http_status >= 500:
            logger.warning(
                "request failed path=%s error=%s: %s",
                request.url.path,
                type(exc).__name__,
                exc,
            )
        return exc.http_status, error_body(type(exc).__name__, str(exc)), None
    if isinstance(exc, RequestValidationError):
        return 422, _validation_body(exc), None
    if isinstance(exc, HTTPException):
        message = (
            exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        )
        if exc.status_code == 404 and message == "Not Found":
            message = (
                f"no route {request.method} {request.url.path}; /docs lists the routes"
            )
        return (
            exc.status_code,
            error_body(_type_of(exc.status_code), message),
            exc.headers,
        )
    logger.error(
        "request crashed method=%s path=%s",
        request.method,
        request.url.path,
        exc_info=exc,
    )
    body = error_body("InternalError", "internal error; the server log has the details")

    return 500, body, None


def _validation_body(exc: RequestValidationError) -> dict[str, Any]:
    details = [
        {
            "location": ".".join(str(part) for part in problem.get("loc", ())),
            "message": str(problem.get("msg", "")),
            "type": str(problem.get("type", "")),
        }
        for problem in exc.errors()
    ]
    noun = "problem" if len(details) == 1 else "problems"
    listed = "; ".join(f"{d['location']}: {d['message']}" for d in details)

    return error_body(
        "ValidationError", f"{len(details)} {noun} in the request: {listed}", details
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _type_of(status: int) -> str:
    """Name a framework error after its status: 404 is NotFound, 405 MethodNotAllowed."""
    words = _phrase(status).replace("-", " ").split()
    return "".join(word[:1].upper() + word[1:] for word in words)


def install_error_handlers(app: FastAPI) -> None:
    """Register :func:`handle_error` for every kind of failure on ``app``."""
    for kind in (VxcacheError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle_error)
