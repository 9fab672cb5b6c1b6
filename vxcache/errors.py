"""
Every error vxcache raises on purpose.

    VxcacheError
    ├── ConfigError                    bad config file, environment or option
    ├── UsageError                     a bad argument from a caller (bad SQL, bad name)
    │   └── QueryError                 SQL refused by the sandbox, failed or timed out
    ├── UpstreamError                  anything about talking to the node
    │   ├── UpstreamUnavailableError   unreachable, timed out, 5xx after retries
    │   │   └── RateLimitedError       still throttled after retries (.retry_after)
    │   ├── UpstreamRejectedError      the node answered 4xx (.status, .url, .detail)
    │   │   ├── AuthRejectedError      401 or 403: the token is wrong or missing
    │   │   └── SessionNotFoundError   404 for a session id
    │   ├── UpstreamServerError        the node answered 5xx with its own words
    │   ├── UpstreamDataError          the answer is not JSON, cut off or the wrong shape
    │   │   └── StateFormatError       a pulled Terraform state vxcache cannot read
    │   └── WriteOutcomeUnknownError   a write was sent and its answer was lost
    ├── StoreError                     the SQLite cache
    │   ├── MigrationError             schema missing, newer than this vxcache, or broken
    │   ├── RecordNotFoundError        no such session or artifact in the cache
    │   └── CacheBusyError             another sync holds the cache
    ├── SyncError                      a sync run failed (.run_id)
    │   └── SyncStoppedError           a sync asked to stop stopped early
    ├── WaitTimeoutError               a session did not settle in time (.session_id)
    └── WriteRefusedError              a write refused before anything was sent
        └── WritesDisabledError        write routes are off (api.allow_writes)

Each class carries ``http_status`` (for the local API) and ``exit_code`` (for the
command line, as ``interface.md`` gives them). Context lives in keyword-only
attributes, so callers never parse message text.
"""

from __future__ import annotations


class VxcacheError(Exception):
    """Base of every error vxcache raises on purpose."""

    http_status: int = 500
    exit_code: int = 1


class ConfigError(VxcacheError):
    """The configuration file, environment or an option is invalid."""

    http_status = 500
    exit_code = 2


class UsageError(VxcacheError):
    """A caller passed something invalid: an unknown report, a bad parameter."""

    http_status = 400
    exit_code = 2


class QueryError(UsageError):
    """A query was refused by the sandbox, failed in DuckDB or ran out of time."""


class UpstreamError(VxcacheError):
    """Talking to the node failed."""

    http_status = 502
    exit_code = 1

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class UpstreamUnavailableError(UpstreamError):
    """The node could not be reached, timed out or kept failing with 5xx."""

    http_status = 503
    exit_code = 3


class RateLimitedError(UpstreamUnavailableError):
    """The node kept answering 429 or 503 with Retry-After past the retry budget."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class UpstreamRejectedError(UpstreamError):
    """The node refused the request with a 4xx answer."""

    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.detail = detail


class AuthRejectedError(UpstreamRejectedError):
    """The node rejected the token (401 or 403)."""


class SessionNotFoundError(UpstreamRejectedError):
    """The node does not know the session id (404)."""

    http_status = 404


class UpstreamServerError(UpstreamError):
    """The node answered with a server error that retries did not cure."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.detail = detail


class UpstreamDataError(UpstreamError):
    """The node's answer is not JSON, was cut off or has the wrong shape."""


class StateFormatError(UpstreamDataError):
    """A pulled Terraform state has a shape vxcache cannot read."""


class WriteOutcomeUnknownError(UpstreamError):
    """A write may have reached the node, but its answer was lost."""

    exit_code = 1


class StoreError(VxcacheError):
    """The SQLite cache could not be read or written."""


class MigrationError(StoreError):
    """The cache schema is missing, newer than this vxcache, or a migration failed."""

    exit_code = 2


class RecordNotFoundError(StoreError):
    """No such session, artifact or report in the cache."""

    http_status = 404
    exit_code = 1


class CacheBusyError(StoreError):
    """Another sync holds the cache's writer lock."""

    http_status = 409


class SyncError(VxcacheError):
    """A sync run failed as a whole."""

    def __init__(self, message: str, *, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class SyncStoppedError(SyncError):
    """A sync was asked to stop (its scheduler is shutting down) and did."""


class WriteRefusedError(VxcacheError):
    """A write was refused before anything was sent (offline, no confirmation)."""

    http_status = 409
    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class WritesDisabledError(WriteRefusedError):
    """A write route was called while ``api.allow_writes`` is false."""

    http_status = 403


class WaitTimeoutError(VxcacheError):
    """A session did not settle within ``writes.wait_timeout``."""

    http_status = 504
    exit_code = 1

    def __init__(self, message: str, *, session_id: str, status: str | None) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.status = status
