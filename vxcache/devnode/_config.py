"""
Configuration of the devnode: the seeded data it starts with and its faults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import TypeAdapter

NODE_ROUTES: Final = ("list", "show", "pull", "apply", "delete")
WRITE_ROUTES: Final = ("apply", "delete")

# Every fault that acts on a number of upcoming requests (-1 = all of them).
COUNTED_FAULTS: Final = (
    "throttle_count",
    "unavailable_count",
    "html_502_count",
    "truncate_count",
    "empty_body_count",
    "garbage_count",
    "drop_after_write_count",
)


@dataclass
class Faults:
    """
    Fault switches for the node routes; the defaults make a healthy node.

    Each `*_count` field is how many upcoming node requests the fault affects
    (0 = off, -1 = every request). When `routes` is not empty, only requests to
    those route names ("list", "show", "pull", "apply", "delete") are affected.
    Faults that answer 200 (truncate, empty body, garbage, drop after write) run
    the real handler first, so a write still happens; the others answer
    without touching the data.
    """

    latency_seconds: float = 0.0
    error_rate: float = 0.0
    throttle_count: int = 0
    retry_after: str = "1"
    unavailable_count: int = 0
    html_502_count: int = 0
    truncate_count: int = 0
    empty_body_count: int = 0
    garbage_count: int = 0
    drop_after_write_count: int = 0
    down: bool = False
    routes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """
        Reject values that cannot describe a fault.
        """
        if self.latency_seconds < 0:
            raise ValueError(
                f"latency_seconds must be >= 0, not {self.latency_seconds}"
            )
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within 0..1, not {self.error_rate}")
        for name in COUNTED_FAULTS:
            if getattr(self, name) < -1:
                raise ValueError(f"{name} must be -1 (all), 0 (off) or more")
        unknown = sorted(set(self.routes) - set(NODE_ROUTES))
        if unknown:
            raise ValueError(f"unknown route names {unknown}; use {list(NODE_ROUTES)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Faults:
        """
        Build faults from JSON, refusing unknown keys and ill-typed values.

        Raises:
            ValueError: a key is unknown or a value does not fit (pydantic's
                ValidationError is a ValueError too).
        """
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields {unknown}; use {sorted(known)}")

        values = dict(data)
        retry_after = values.get("retry_after")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            values["retry_after"] = str(retry_after)

        return _FAULTS_ADAPTER.validate_python(values)

    def to_dict(self) -> dict[str, object]:
        """
        Return the faults as JSON-ready data.
        """
        return {item.name: getattr(self, item.name) for item in fields(self)}


_FAULTS_ADAPTER: Final = TypeAdapter(Faults)


@dataclass
class DevnodeConfig:
    """
    How a devnode starts: its seeded data, its token and its faults.

    Example:
        >>> config = DevnodeConfig(sessions=500, seed=7)
    """

    sessions: int = 2000
    window: int = 200
    seed: int = 1
    token: str = "devnode-token"  # noqa: S105 - a well-known local test token
    rate_per_minute: float = 0.0
    transition_seconds: float = 2.0
    state_bytes: int = 20_000
    faults: Faults = field(default_factory=Faults)
    # The instant the seeded history ends; None means the current minute. Fix it
    # when two nodes must render identical timestamps.
    anchor_at: datetime | None = None


TimeStyle = Literal["mixed", "z"]
ListShape = Literal["array", "wrapped"]
ApplyOutcome = Literal["seeded", "succeeded", "failed"]


@dataclass
class Settings:
    """
    Run-time switches, changed through `PUT /_admin/settings`.
    """

    window: int
    rate_per_minute: float
    transition_seconds: float
    state_bytes: int
    time_style: TimeStyle = "mixed"
    list_shape: ListShape = "array"
    state_as_string: bool = False
    next_apply_outcome: ApplyOutcome = "seeded"

    def to_dict(self) -> dict[str, Any]:
        """
        Return the settings as JSON-ready data.
        """
        return asdict(self)
