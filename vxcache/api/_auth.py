"""
Who may call the API: loopback by default, a bearer token for anything wider.

With ``api.token`` set, every request but ``GET /healthz`` needs
``Authorization: Bearer <token>``; the check sits in front of routing, so
unknown paths and the OpenAPI document are covered too.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from vxcache.api._errors import error_body, error_response
from vxcache.config import Settings
from vxcache.errors import ConfigError

OPEN_PATHS = frozenset({"/healthz"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """
    Refuse to serve beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``api.token`` is empty.
    """
    if is_loopback(host) or settings.api.token.get_secret_value():
        return
    raise ConfigError(
        f"refusing to serve on {host} without a token; set api.token in the config "
        "or bind 127.0.0.1"
    )


class BearerAuth:
    """ASGI middleware: answer 401 unless the request carries the API token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._is_authorized(scope):
            scope.setdefault("state", {})["authorized"] = True
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return

        body = error_body(
            "Unauthorized",
            "this API needs the header 'Authorization: Bearer <api.token>'",
        )
        response = error_response(401, body, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _is_authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name != b"authorization":
                continue
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return False
            return hmac.compare_digest(credentials.strip(), self._token)
        return False
