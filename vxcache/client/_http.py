"""
One exchange with the node: send, read within a cap, map failures, retry reads.

httpx exceptions are translated in this package and nowhere else; everything
leaving it comes from :mod:`vxcache.errors`. Reads go through
:meth:`Wire.read`, which retries what another attempt may cure; writes through
:meth:`Wire.write`, which sends exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import httpx
import tenacity

from vxcache.client._failures import Failures
from vxcache.client._messages import extract_detail, parse_retry_after, safe_path
from vxcache.client._payload import (
    JsonCutOffError,
    NotJsonError,
    decode_json,
    parse_write_answer,
)
from vxcache.config import NodeSettings
from vxcache.errors import ConfigError, UpstreamError

logger = logging.getLogger(__name__)

# Error answers are read only far enough to quote the node's words.
_ERROR_BODY_MAX_BYTES: Final = 64 * 1024
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
# A gateway that answers 502 or 504 may have passed a write on to the node.
_GATEWAY_STATUSES: Final = frozenset({502, 504})
# Failures that happen before any byte of the request leaves.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)
_BuildError = Callable[[int], UpstreamError]


@dataclass(frozen=True, slots=True)
class Route:
    """One of the node's routes: its name in settings and logs, method and path."""

    name: str
    method: str
    path: str

    @property
    def shown_path(self) -> str:
        """Return the path without a query string, fit for messages and logs."""
        return safe_path(self.path)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the node sent back: a status and the body, read within a cap."""

    status: int
    body: bytes
    retry_after: float | None = None
    location: str | None = None
    is_cut_off: bool = False


class _Failure(Exception):
    """One attempt failed in a way that another attempt may cure."""

    def __init__(
        self,
        reason: str,
        build: _BuildError,
        *,
        retry_after: float | None = None,
        may_have_acted: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.build = build
        self.retry_after = retry_after
        self.may_have_acted = may_have_acted


class Wire:
    """Send requests to the node through one httpx client and judge the answers."""

    def __init__(
        self,
        http: httpx.Client,
        settings: NodeSettings,
        *,
        sleep: Callable[[float], None],
    ) -> None:
        self._http = http
        self._settings = settings
        self._sleep = sleep
        self._has_token = bool(settings.token.get_secret_value())
        # 0.5s, 1s, 2s ... plus up to 0.5s of jitter; _wait caps the sum.
        self._backoff = tenacity.wait_exponential(
            multiplier=0.5, max=settings.retry_max_wait
        ) + tenacity.wait_random(0, 0.5)
        self.failures = Failures(settings)

    @property
    def base_url(self) -> str:
        """Return the node URL without user info, fit to show."""
        return self.failures.base_url

    def read(
        self,
        route: Route,
        payload: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> tuple[Answer, Any]:
        """
        Send an idempotent request, retrying what may pass, and parse its JSON.

        Raises:
            UpstreamError: the mapped error once retries are spent or futile.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._settings.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Failure),
            before_sleep=partial(self._log_retry, route, session_id),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt_read, route, payload, session_id)
        except _Failure as failure:
            attempts = self._settings.max_attempts
            raise failure.build(attempts) from failure.__cause__

    def write(
        self, route: Route, payload: dict[str, Any], *, session_id: str
    ) -> dict[str, Any]:
        """
        Send a request that changes the node exactly once, and parse its answer.

        Raises:
            WriteOutcomeUnknownError: the request may have reached the node but
                its answer was lost or unreadable.
            UpstreamError: nothing was sent, or the node refused (mapped).
        """
        try:
            answer = self._exchange(route, payload)
            self._check_status(route, answer, session_id=session_id, is_write=True)
        except _Failure as failure:
            if not failure.may_have_acted:
                raise failure.build(1) from failure.__cause__
            error = self.failures.outcome_unknown(route, session_id, failure.reason)
            raise error from failure.__cause__
        if not answer.body.strip():
            return {}
        try:
            return parse_write_answer(decode_json(answer.body))
        except (JsonCutOffError, NotJsonError) as exc:
            reason = f"its answer is unreadable ({exc})"
            raise self.failures.outcome_unknown(
                route, session_id, reason, status=answer.status
            ) from exc

    def probe(self, route: Route) -> str | None:
        """
        Return None when the route answers 2xx, else a short reason.

        Waits no longer than ``connect_timeout`` for the answer to begin: a
        node that takes connections but never answers is not reachable.
        """
        started = time.perf_counter()
        timeout = self._settings.connect_timeout
        try:
            with self._http.stream(
                route.method, route.path, timeout=timeout
            ) as response:
                status = response.status_code
        except httpx.LocalProtocolError:
            return "the request cannot be built; check node.token"
        except httpx.TransportError as exc:
            self._log_failure(route, exc, started)
            reason = self.failures.describe(
                exc, is_answered=False, read_timeout=timeout
            )
            return f"unreachable: {reason}"
        self._log_request(route, status, 0, started)

        if 200 <= status < 300:
            return None
        if status in (401, 403):
            kind = "token rejected" if self._has_token else "no token set"
            return f"{kind} ({status})"
        if status == 429:
            return "throttled (429)"

        return f"node answered {status} on {route.shown_path}"

    def _attempt_read(
        self, route: Route, payload: dict[str, Any] | None, session_id: str | None
    ) -> tuple[Answer, Any]:
        answer = self._exchange(route, payload)
        self._check_status(route, answer, session_id=session_id, is_write=False)
        if not answer.body.strip():
            raise self.failures.empty(route, answer.status)
        try:
            return answer, decode_json(answer.body)
        except JsonCutOffError as exc:
            reason = "the JSON ends too soon"
            raise _Failure(
                reason, partial(self.failures.cut_off, route, reason)
            ) from exc
        except NotJsonError as exc:
            raise self.failures.not_json(route, answer) from exc

    def _exchange(self, route: Route, payload: dict[str, Any] | None) -> Answer:
        started = time.perf_counter()
        try:
            request = self._http.build_request(route.method, route.path, json=payload)
            response = self._http.send(request, stream=True)
        except httpx.LocalProtocolError:
            # h11 quotes the offending header value, which may be the token.
            raise ConfigError(
                f"the request to {route.shown_path} cannot be built; check that "
                "node.token and node.auth_header hold only printable ASCII"
            ) from None
        except httpx.TransportError as exc:
            self._log_failure(route, exc, started)
            raise self._transport_failure(route, exc, is_answered=False) from exc

        try:
            answer = self._read_answer(route, response)
        except _Failure as failure:
            self._log_failure(route, failure.__cause__, started)
            raise
        finally:
            with contextlib.suppress(httpx.TransportError):
                # The body is read or abandoned; a failing close changes nothing.
                response.close()
        self._log_request(route, answer.status, len(answer.body), started)

        return answer

    def _read_answer(self, route: Route, response: httpx.Response) -> Answer:
        is_success = response.is_success
        max_bytes = self._settings.max_pull_bytes
        limit = max_bytes if is_success else _ERROR_BODY_MAX_BYTES
        announced = _content_length(response)
        if is_success and announced is not None and announced > max_bytes:
            raise self.failures.too_large(route, f"it announced {announced} bytes")

        chunks: list[bytes] = []
        size = 0
        is_cut_off = False
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit and is_success:
                    raise self.failures.too_large(route, "the body kept coming")
                if size > limit:
                    break
        except httpx.DecodingError as exc:
            raise self.failures.undecodable(route, response.status_code) from exc
        except httpx.TransportError as exc:
            if is_success:
                raise self._transport_failure(route, exc, is_answered=True) from exc
            is_cut_off = True
        body = b"".join(chunks)

        return Answer(
            status=response.status_code,
            body=body if is_success else body[:limit],
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            location=response.headers.get("location"),
            is_cut_off=is_cut_off,
        )

    def _check_status(
        self, route: Route, answer: Answer, *, session_id: str | None, is_write: bool
    ) -> None:
        status = answer.status
        if 200 <= status < 300:
            return
        detail = extract_detail(answer.body, is_cut_off=answer.is_cut_off)
        failures = self.failures

        if status in (401, 403):
            raise failures.auth(route, status, detail)
        if status == 404 and session_id is not None:
            raise failures.not_found(route, session_id, detail)
        if is_write and session_id is not None and status in _GATEWAY_STATUSES:
            reason = f"a gateway answered {status} ({detail})"
            raise failures.outcome_unknown(route, session_id, reason, status=status)
        if status == 429 or (status == 503 and answer.retry_after is not None):
            build = partial(failures.throttled, route, answer, detail)
            raise _Failure(str(status), build, retry_after=answer.retry_after)
        if status in _RETRY_STATUSES:
            build = partial(failures.server, route, status, detail)
            raise _Failure(str(status), build, retry_after=answer.retry_after)
        if status >= 500:
            raise failures.server(route, status, detail, 1)
        raise failures.rejected(route, answer, detail)

    def _transport_failure(
        self, route: Route, exc: httpx.TransportError, *, is_answered: bool
    ) -> _Failure:
        reason = self.failures.describe(exc, is_answered=is_answered)
        may_have_acted = is_answered or not isinstance(exc, _NOT_SENT)
        if isinstance(exc, httpx.ReadTimeout):
            build = partial(self.failures.slow, route, reason)
        elif is_answered:
            build = partial(self.failures.cut_off, route, reason)
        else:
            build = partial(self.failures.unavailable, route, reason)

        return _Failure(reason, build, may_have_acted=may_have_acted)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        cap = self._settings.retry_max_wait
        if isinstance(failure, _Failure) and failure.retry_after is not None:
            return min(failure.retry_after, cap)

        return min(self._backoff(retry_state), cap)

    def _log_retry(
        self,
        route: Route,
        session_id: str | None,
        retry_state: tenacity.RetryCallState,
    ) -> None:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        action = retry_state.next_action
        # A request about one session is one of many a sync sends in a row,
        # and the sync sums up their failures; only list retries are warnings.
        logger.log(
            logging.INFO if session_id else logging.WARNING,
            "node request retried route=%s%s attempt=%d wait=%.3g reason=%s",
            route.name,
            f" session={session_id}" if session_id else "",
            retry_state.attempt_number + 1,
            action.sleep if action is not None else 0.0,
            failure.reason if isinstance(failure, _Failure) else "unknown",
        )

    def _log_request(
        self, route: Route, status: int, size: int, started: float
    ) -> None:
        logger.debug(
            "node request method=%s route=%s path=%s status=%d bytes=%d ms=%.1f",
            route.method,
            route.name,
            route.shown_path,
            status,
            size,
            (time.perf_counter() - started) * 1000,
        )

    def _log_failure(
        self, route: Route, exc: BaseException | None, started: float
    ) -> None:
        logger.debug(
            "node request failed method=%s route=%s path=%s error=%s ms=%.1f",
            route.method,
            route.name,
            route.shown_path,
            type(exc).__name__,
            (time.perf_counter() - started) * 1000,
        )


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None
