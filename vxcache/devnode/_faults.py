"""
The fault gate: an ASGI layer in front of the node routes that plays a bad day.

It counts each node request as it arrives, then, as the faults say, delays it,
answers with an error the way a proxy or the node would, or lets the handler
run and then spoils the answer (cuts it short, empties it, garbles it, or drops
the connection).

Dropping a connection needs the server's transport, which ASGI does not hand
out. uvicorn's `send` is a bound method of its per-request cycle object, which
holds the transport, so the gate closes that transport when it can reach it.
When it cannot (another server, or a wrapper around `send`), it leaves the
response unfinished instead, and uvicorn closes the connection itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.types import Message, Receive, Scope, Send

from vxcache.devnode._config import WRITE_ROUTES, Faults
from vxcache.devnode._state import DevnodeState

logger = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NODE_PATHS: Final = {
    "/api/v3/sessions/list": "list",
    "/api/v2/tenant/sessions/show": "show",
    "/api/v2/tenant/sessions/pull": "pull",
    "/api/v2/tenant/sessions/apply": "apply",
    "/api/v2/tenant/sessions/delete": "delete",
}
BAD_GATEWAY_HTML: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# A 200 answer of the wrong shape for each route.
GARBAGE: Final = {
    "list": {"unexpected": True},
    "show": "unexpected",
    "pull": ["unexpected"],
    "apply": "unexpected",
    "delete": ["unexpected"],
}
_JSON: Final = (b"content-type", b"application/json")
_DISCONNECT_WAIT_STEPS: Final = 200


@dataclass
class _Answer:
    """A whole HTTP answer: status, headers and body."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send_to(self, send: Send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send(
            {"type": "http.response.start", "status": self.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": self.body})


def _json_answer(status: int, payload: object, **headers: str) -> _Answer:
    extra = [
        (name.replace("_", "-").encode(), value.encode())
        for name, value in headers.items()
    ]
    return _Answer(status, orjson.dumps(payload), [_JSON, *extra])


def _take(faults: Faults, name: str) -> bool:
    """Use up one request of a counted fault; True when the fault acts."""
    left: int = getattr(faults, name)
    if left == 0:
        return False
    if left > 0:
        setattr(faults, name, left - 1)
    return True


async def drop_connection(send: Send, *, started: bool) -> None:
    """
    Close the client's connection without finishing the answer.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        if not started:
            # An unfinished answer makes uvicorn close the connection.
            start: Message = {
                "type": "http.response.start",
                "status": 200,
                "headers": [],
            }
            await send(start)
        return

    transport.close()
    # Let the server see the connection go, so it does not report an
    # unfinished response as an application error.
    for _ in range(_DISCONNECT_WAIT_STEPS):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> _Answer:
    """Run the app and collect its whole answer instead of sending it."""
    messages: list[Message] = []

    async def keep(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, keep)
    start = next(
        message for message in messages if message["type"] == "http.response.start"
    )
    body = b"".join(
        message.get("body", b"")
        for message in messages
        if message["type"] == "http.response.body"
    )
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() != b"content-length"
    ]

    return _Answer(start["status"], body, headers)


class FaultGate:
    """
    Apply the devnode's current faults to each node request.
    """

    def __init__(self, state: DevnodeState) -> None:
        self.state = state

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, app: ASGIApp
    ) -> None:
        """
        Serve one ASGI call through `app`, with faults on node routes.
        """
        route = NODE_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await app(scope, receive, send)
            return
        self.state.count_request(route)
        faults = self.state.faults
        if faults.routes and route not in faults.routes:
            await app(scope, receive, send)
            return

        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if faults.down:
            logger.info("devnode fault route=%s kind=down", route)
            await drop_connection(send, started=False)
            return
        early = self._early_answer(faults)
        if early is not None:
            logger.info("devnode fault route=%s kind=status-%d", route, early.status)
            await early.send_to(send)
            return
        await self._run_late(faults, route, app, scope, receive, send)

    def _early_answer(self, faults: Faults) -> _Answer | None:
        """Pick an error answer that stands in for the handler, if any fault fires."""
        retry = {"retry_after": faults.retry_after} if faults.retry_after else {}
        if _take(faults, "throttle_count"):
            return _json_answer(429, {"detail": "Too Many Requests"}, **retry)
        if _take(faults, "unavailable_count"):
            return _json_answer(503, {"detail": "Service Unavailable"}, **retry)
        if _take(faults, "html_502_count"):
            return _Answer(502, BAD_GATEWAY_HTML, [(b"content-type", b"text/html")])
        if faults.error_rate > 0 and self.state.fault_rng.random() < faults.error_rate:
            return _json_answer(500, {"detail": "Internal Server Error"})
        return None

    async def _run_late(
        self,
        faults: Faults,
        route: str,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run the handler, then spoil its answer if a fault says so."""
        if route in WRITE_ROUTES and _take(faults, "drop_after_write_count"):
            kind = "drop"
        elif _take(faults, "truncate_count"):
            kind = "truncate"
        elif _take(faults, "empty_body_count"):
            kind = "empty"
        elif _take(faults, "garbage_count"):
            kind = "garbage"
        else:
            await app(scope, receive, send)
            return

        answer = await _capture(app, scope, receive)
        logger.info("devnode fault route=%s kind=%s", route, kind)
        if kind == "drop":
            await drop_connection(send, started=False)
        elif kind == "truncate":
            await _send_truncated(answer, send)
        elif kind == "empty":
            await _Answer(200, b"", [_JSON]).send_to(send)
        else:
            await _json_answer(200, GARBAGE[route]).send_to(send)


async def _send_truncated(answer: _Answer, send: Send) -> None:
    """Announce the full length, send half of the body, then hang up."""
    full = str(len(answer.body)).encode()
    headers: list[Any] = [*answer.headers, (b"content-length", full)]
    await send(
        {"type": "http.response.start", "status": answer.status, "headers": headers}
    )
    half = answer.body[: len(answer.body) // 2]
    await send({"type": "http.response.body", "body": half, "more_body": True})
    await drop_connection(send, started=True)
