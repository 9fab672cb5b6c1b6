"""
Build the vxcache error for each way an exchange with the node can fail.

Every message is one sentence: what failed, at which node and route path
(never a query string, never the token), the node's own words where it sent
some, and the fix.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Final

import httpx

from vxcache.client._messages import (
    describe_body,
    format_bytes,
    format_seconds,
    safe_url,
)
from vxcache.config import NodeSettings
from vxcache.errors import (
    AuthRejectedError,
    RateLimitedError,
    SessionNotFoundError,
    UpstreamDataError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)

if TYPE_CHECKING:
    from vxcache.client._http import Answer, Route

_CONNECTION_FIX: Final = "check node.url or VXCACHE_NODE_URL, or use --offline"
_SLOW_FIX: Final = "raise node.read_timeout if the node is slow, or try again later"
_CHAIN_DEPTH: Final = 8


class Failures:
    """Make the errors for one node, worded with its safe URL and settings."""

    def __init__(self, settings: NodeSettings) -> None:
        self._settings = settings
        self._has_token = bool(settings.token.get_secret_value())
        self.base_url = safe_url(settings.url)

    def url(self, route: Route) -> str:
        """Return the route's URL without query string or user info."""
        return f"{self.base_url}{route.shown_path}"

    def describe(
        self,
        exc: httpx.TransportError,
        *,
        is_answered: bool,
        read_timeout: float | None = None,
    ) -> str:
        """
        Return a short reason for a transport failure: ``connection refused``.

        ``read_timeout`` is the one the request had, if not ``node.read_timeout``.
        """
        settings = self._settings
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {format_seconds(settings.connect_timeout)}"
        if isinstance(exc, httpx.ReadTimeout):
            waited = format_seconds(read_timeout or settings.read_timeout)
            if is_answered:
                return f"the answer stalled for {waited}"
            return f"no answer within {waited}"
        if isinstance(exc, httpx.ConnectError):
            return _connect_reason(exc)
        if isinstance(exc, httpx.TimeoutException):
            return "the request could not be sent in time"
        if isinstance(exc, httpx.WriteError):
            return "the connection broke while sending"
        if is_answered:
            return "the connection closed mid-body"
        if isinstance(exc, httpx.RemoteProtocolError):
            return "the connection closed without an answer"
        if isinstance(exc, httpx.ReadError):
            return "the connection broke before an answer"

        return f"the request failed ({type(exc).__name__})"

    def unavailable(self, route: Route, reason: str, attempts: int) -> UpstreamError:
        """Return the error for a node that cannot be reached."""
        return UpstreamUnavailableError(
            f"node at {self.base_url} is unreachable: {reason}{_tries(attempts)}; "
            f"{_CONNECTION_FIX}",
            url=self.url(route),
        )

    def slow(self, route: Route, reason: str, attempts: int) -> UpstreamError:
        """Return the error for a node that did not answer in time."""
        return UpstreamUnavailableError(
            f"node at {self.base_url} did not answer {route.shown_path}: "
            f"{reason}{_tries(attempts)}; {_SLOW_FIX}",
            url=self.url(route),
        )

    def cut_off(self, route: Route, reason: str, attempts: int) -> UpstreamError:
        """Return the error for an answer that stopped before its end."""
        return UpstreamDataError(
            f"node at {self.base_url} cut off its answer to {route.shown_path}: "
            f"{reason}{_tries(attempts)}; try again, or check any proxy in between",
            url=self.url(route),
        )

    def server(
        self, route: Route, status: int, detail: str, attempts: int
    ) -> UpstreamError:
        """Return the error for a 5xx answer."""
        return UpstreamServerError(
            f"node at {self.base_url} failed {route.shown_path} with {status}"
            f"{_tries(attempts)}: {detail}; try again later or check the node's logs",
            url=self.url(route),
            status=status,
            detail=detail,
        )

    def throttled(
        self, route: Route, answer: Answer, detail: str, attempts: int
    ) -> UpstreamError:
        """Return the error for a node that answered 429 (or 503 with Retry-After)."""
        wait = answer.retry_after
        when = f"in {format_seconds(wait)}" if wait is not None else "later"
        return RateLimitedError(
            f"node at {self.base_url} throttled {route.shown_path} with "
            f"{answer.status}{_tries(attempts)}: {detail}; try again {when}",
            url=self.url(route),
            status=answer.status,
            retry_after=wait,
        )

    def auth(self, route: Route, status: int, detail: str) -> UpstreamError:
        """Return the error for a 401 or 403 answer."""
        if self._has_token:
            message = (
                f"node at {self.base_url} rejected the token for {route.shown_path} "
                f"({status}: {detail}); set VXCACHE_TOKEN or node.token to a valid "
                "token"
            )
        else:
            message = (
                f"node at {self.base_url} refused {route.shown_path} without a "
                f"token ({status}: {detail}); set VXCACHE_TOKEN or node.token"
            )
        return AuthRejectedError(
            message, url=self.url(route), status=status, detail=detail
        )

    def not_found(self, route: Route, session_id: str, detail: str) -> UpstreamError:
        """Return the error for a 404 about a session id."""
        return SessionNotFoundError(
            f"session {session_id!r} is not known to the node at {self.base_url} "
            f"({route.shown_path} answered 404: {detail}); check the id with "
            "`vxcache sessions list`",
            url=self.url(route),
            status=404,
            detail=detail,
        )

    def rejected(self, route: Route, answer: Answer, detail: str) -> UpstreamError:
        """Return the error for any other 4xx answer, or a redirect."""
        path = route.shown_path
        if 300 <= answer.status < 400:
            target = safe_url(answer.location) if answer.location else "elsewhere"
            message = (
                f"node at {self.base_url} redirected {path} with {answer.status} to "
                f"{target}; set node.url to the address the node answers on"
            )
        else:
            fix = (
                f"; check node.paths.{route.name}"
                if answer.status in (404, 405)
                else ""
            )
            message = (
                f"node at {self.base_url} rejected {path} with {answer.status}: "
                f"{detail}{fix}"
            )
        return UpstreamRejectedError(
            message, url=self.url(route), status=answer.status, detail=detail
        )

    def empty(self, route: Route, status: int) -> UpstreamError:
        """Return the error for a success answer with no body."""
        return UpstreamDataError(
            f"node at {self.base_url} sent an empty answer to {route.shown_path}; "
            f"check node.paths.{route.name}",
            url=self.url(route),
            status=status,
        )

    def not_json(self, route: Route, answer: Answer) -> UpstreamError:
        """Return the error for a success answer that is not JSON."""
        return UpstreamDataError(
            f"node at {self.base_url} answered {route.shown_path} with "
            f"{describe_body(answer.body)} instead of JSON; "
            f"check node.url and node.paths.{route.name}",
            url=self.url(route),
            status=answer.status,
        )

    def undecodable(self, route: Route, status: int) -> UpstreamError:
        """Return the error for a compressed body that does not decompress."""
        return UpstreamDataError(
            f"node at {self.base_url} answered {route.shown_path} with a "
            "compressed body that cannot be decoded; check any proxy in between",
            url=self.url(route),
            status=status,
        )

    def shape(self, route: Route, problem: str) -> UpstreamError:
        """Return the error for JSON of the wrong shape."""
        return UpstreamDataError(
            f"node at {self.base_url} answered {route.shown_path} with an "
            f"unexpected shape: {problem}",
            url=self.url(route),
            status=200,
        )

    def too_large(self, route: Route, how: str) -> UpstreamError:
        """Return the error for an answer past ``max_pull_bytes``."""
        limit = format_bytes(self._settings.max_pull_bytes)
        return UpstreamDataError(
            f"node at {self.base_url} answered {route.shown_path} with more than "
            f"{limit} ({how}); raise node.max_pull_bytes if answers this large "
            "are expected",
            url=self.url(route),
            status=200,
        )

    def outcome_unknown(
        self, route: Route, session_id: str, reason: str, *, status: int | None = None
    ) -> UpstreamError:
        """Return the error for a write whose answer was lost after sending."""
        return WriteOutcomeUnknownError(
            f"{route.name} of session {session_id!r} was sent to the node at "
            f"{self.base_url} ({route.shown_path}) but {reason}; the node may have "
            f"acted; check with `vxcache sessions show {session_id} --refresh`",
            url=self.url(route),
            status=status,
        )


def _tries(attempts: int) -> str:
    return f" ({attempts} attempts)" if attempts > 1 else ""


def _connect_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name not resolved"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason or 'handshake'})"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name" in text and ("resolv" in text or "known" in text):
        return "host name not resolved"

    return "connection failed"
