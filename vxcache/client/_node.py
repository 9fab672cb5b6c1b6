"""The public face of the client: one method per node operation."""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import httpx

from vxcache.client._http import Route, Wire
from vxcache.client._payload import (
    PullResult,
    ShapeError,
    parse_pull_answer,
    parse_session_answer,
    parse_session_list,
)
from vxcache.config import NodeSettings
from vxcache.errors import ConfigError
from vxcache.records import SessionListing, SessionRecord

logger = logging.getLogger(__name__)

_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE: Final = re.compile(r"^[\x20-\x7e]*$")


class NodeClient:
    """
    Talk to the node: list, show and pull sessions; apply and delete them.

    Reads are retried with backoff as the settings allow; apply and delete are
    sent once. Every failure to talk to the node is an
    :class:`~vxcache.errors.UpstreamError`; httpx types never leave.

    Example:
        >>> with NodeClient(settings.node) as client:  # doctest: +SKIP
        ...     records = client.list_sessions()
    """

    def __init__(
        self,
        settings: NodeSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """
        Open a connection pool to ``settings.url``; nothing is sent yet.

        ``transport`` replaces the network (tests); ``sleep`` is called for
        every wait between retries.

        Raises:
            ConfigError: the token or auth header cannot travel in an HTTP header.
        """
        self._settings = settings
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        self._http = httpx.Client(
            base_url=settings.url,
            headers={"Accept": "application/json", **_auth_headers(settings)},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            verify=tls_verification(settings.url),
        )
        self._wire = Wire(self._http, settings, sleep=sleep)

    def __repr__(self) -> str:
        return f"NodeClient(url={self._wire.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        self._http.close()

    def list_sessions(self) -> list[SessionRecord]:
        """
        Return the node's recent sessions (a window, not the whole history).

        Raises:
            UpstreamError: the node is unreachable, refused, or answered badly.
        """
        return self.read_listing().records

    def read_listing(self, known: Mapping[str, bytes] | None = None) -> SessionListing:
        """
        Return the node's recent sessions, parsing only items not in ``known``.

        ``known`` maps session ids to the wire digest of the item each was last
        written from (``SessionRecord.wire_digest``); see ``SessionListing``.

        Raises:
            UpstreamError: the node is unreachable, refused, or answered badly.
        """
        route = self._route("list")
        _, value = self._wire.read(route)
        try:
            listing = parse_session_list(value, known=known)
        except ShapeError as exc:
            raise self._wire.failures.shape(route, str(exc)) from exc
        logger.debug(
            "sessions listed count=%d parsed=%d", len(listing), len(listing.records)
        )

        return listing

    def show_session(self, session_id: str) -> SessionRecord:
        """
        Return one session as the node knows it now.

        Raises:
            SessionNotFoundError: the node does not know the id.
            UpstreamError: the node is unreachable, refused, or answered badly.
        """
        route = self._route("show")
        _, value = self._wire.read(
            route,
            {"session_id": session_id},
            session_id=session_id,
        )
        try:
            return parse_session_answer(value, session_id=session_id)
        except ShapeError as exc:
            raise self._wire.failures.shape(route, str(exc)) from exc

    def pull_session(self, session_id: str) -> PullResult:
        """
        Return a session's Terraform state and artifacts, streamed within a cap.

        The answer is read up to ``max_pull_bytes``; a larger one fails cleanly.

        Raises:
            SessionNotFoundError: the node does not know the id.
            UpstreamDataError: the answer is too large, not JSON or malformed.
            UpstreamError: the node is unreachable or refused.
        """
        route = self._route("pull")
        answer, value = self._wire.read(
            route,
            {"session_id": session_id},
            session_id=session_id,
        )
        try:
            result = parse_pull_answer(
                value,
                session_id=session_id,
                size_bytes=len(answer.body),
                sha256=hashlib.sha256(answer.body).hexdigest(),
            )
        except ShapeError as exc:
            raise self._wire.failures.shape(route, str(exc)) from exc
        logger.debug(
            "session pulled session_id=%s bytes=%d artifacts=%d has_state=%s",
            session_id,
            result.size_bytes,
            len(result.artifacts),
            result.state is not None,
        )

        return result

    def apply_session(self, session_id: str) -> dict[str, Any]:
        """
        Ask the node to apply a session's saved plan; sent once, never retried.

        Raises:
            WriteOutcomeUnknownError: the request may have reached the node but
                its answer was lost.
            UpstreamError: nothing was sent, or the node refused.
        """
        route = self._route("apply")
        return self._wire.write(
            route, {"session_id": session_id}, session_id=session_id
        )

    def delete_session(self, session_id: str, *, force: bool = False) -> dict[str, Any]:
        """
        Ask the node to tear down a session's resource; sent once, never retried.

        An empty answer (the SDK reads none) comes back as ``{}``.

        Raises:
            WriteOutcomeUnknownError: the request may have reached the node but
                its answer was lost.
            UpstreamError: nothing was sent, or the node refused.
        """
        route = self._route("delete")
        payload = {"session_id": session_id, "force": force}
        return self._wire.write(route, payload, session_id=session_id)

    def check_reachable(self) -> str | None:
        """
        Try the list route once, without reading its body.

        Returns None when the node answers 2xx, else a short reason such as
        ``"unreachable: connection refused"`` or ``"token rejected (401)"``.
        """
        return self._wire.probe(self._route("list"))

    def _route(self, name: str) -> Route:
        method = "GET" if name == "list" else "POST"
        return Route(name, method, getattr(self._settings.paths, name))


def tls_verification(url: str) -> ssl.SSLContext | bool:
    """
    Return how the client verifies TLS: against the default CAs for an https node.

    A plain-http node never meets TLS, as redirects are not followed. Its
    client gets a context that trusts no certificate at all, rather than
    loading every default CA, which took about 30 ms of each command.
    """
    if url.lower().startswith("https://"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and trusts no one


def _auth_headers(settings: NodeSettings) -> dict[str, str]:
    token = settings.token.get_secret_value()
    if not token:
        return {}
    if not _HEADER_NAME.match(settings.auth_header):
        raise ConfigError(
            f"node.auth_header {settings.auth_header!r} is not a valid HTTP header "
            "name; use a name like Authorization or X-Api-Key"
        )
    value = f"{settings.auth_scheme} {token}" if settings.auth_scheme else token
    if not _HEADER_VALUE.match(value):
        # Never quote the value: it holds the token.
        raise ConfigError(
            "node.token or node.auth_scheme holds characters an HTTP header cannot "
            "carry (line breaks, control or non-ASCII characters); check "
            "VXCACHE_TOKEN or node.token"
        )

    return {settings.auth_header: value}
