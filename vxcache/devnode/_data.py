"""
Seeded session records: the vocabulary, the history generator and wire rendering.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from vxcache.devnode._time import (
    FORM_WEIGHTS,
    FORMS,
    NANOS,
    OPEN_ABSENT,
    OPEN_FORMS,
    PLAIN_FORM,
    TimeForm,
    render_open,
    render_time,
)

T = TypeVar("T")

HOUR_NANOS: Final = 3600 * NANOS
HISTORY_NANOS: Final = 182 * 24 * HOUR_NANOS
RECENT_NANOS: Final = 90 * 60 * NANOS

IN_FLIGHT: Final = frozenset({"queued", "running", "applying", "deleting"})
OPTIONAL_FIELDS: Final = ("hostname", "username", "script", "resource_id")

# Statuses by weight, for sessions older than a few hours and for recent ones.
_SETTLED_MIX: Final = (
    ("succeeded", 50),
    ("deleted", 14),
    ("planned", 10),
    ("failed", 9),
    ("cancelled", 4),
    ("timed_out", 3),
    ("rolled_back", 3),
    ("delete_failed", 2),
)
_RECENT_MIX: Final = (
    ("running", 25),
    ("succeeded", 25),
    ("planned", 15),
    ("applying", 10),
    ("queued", 10),
    ("failed", 10),
    ("deleting", 5),
)

_ROLES: Final = (
    "web", "api", "db", "cache", "worker", "edge", "batch", "etl", "search",
    "queue", "auth", "mail", "ci", "metrics", "vault", "bastion", "gateway",
)  # fmt: skip
_ENVIRONMENTS: Final = ("prod", "stage", "dev", "qa")
_REGIONS: Final = ("eu-west-1", "eu-central-1", "us-east-1", "ap-south-1")
_USERNAMES: Final = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
    "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
    "victor", "walter", "yusuf", "amira", "bjorn", "chen.wei", "dmitri",
    "esther", "farah", "gustavo", "hana", "ingrid", "jamal", "kenji", "lucia",
    "zoë", "łukasz", "renée", "søren", "李伟", "ci-bot", "terraform-runner",
    "svc-deploy", "o'brien",
)  # fmt: skip
# (script, prefix of the resource id it provisions)
_SCRIPTS: Final = (
    ("install-postgres.sh", "db"), ("install-mysql.sh", "db"),
    ("install-redis.sh", "cache"), ("install-memcached.sh", "cache"),
    ("install-nginx.sh", "i"), ("install-haproxy.sh", "i"),
    ("install-docker.sh", "i"), ("bootstrap-k8s-node.sh", "i"),
    ("join-k8s-cluster.sh", "i"), ("install-elasticsearch.sh", "es"),
    ("install-kafka.sh", "msk"), ("install-rabbitmq.sh", "mq"),
    ("provision-vpc.sh", "vpc"), ("provision-subnets.sh", "subnet"),
    ("provision-bucket.sh", "bucket"), ("provision-dns-zone.sh", "zone"),
    ("rotate-certs.sh", "cert"), ("install-vault.sh", "i"),
    ("install-prometheus.sh", "i"), ("install-grafana.sh", "i"),
    ("setup-backups.sh", "backup"), ("harden-ssh.sh", "i"),
    ("install-node-exporter.sh", "i"), ("upgrade-kernel.sh", "i"),
    ("install-minio.sh", "bucket"), ("configure-firewall.sh", "sg"),
)  # fmt: skip
_SCRIPT_PREFIX: Final = dict(_SCRIPTS)
_SETTLED_EXIT_CODES: Final = {
    "succeeded": 0,
    "planned": 0,
    "deleted": 0,
    "timed_out": 124,
    "cancelled": 130,
    "rolled_back": 1,
    "delete_failed": 1,
}


@dataclass(slots=True, eq=False)
class Session:
    """
    One session as the node keeps it; `to_wire` writes it as the node sends it.
    """

    session_id: str
    status: str
    order_nanos: int
    started_nanos: int | None
    ended_nanos: int | None
    form: TimeForm
    open_form: int
    fields: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    wire_times: dict[str, Any] = field(default_factory=dict)
    wire: dict[str, Any] | None = None
    wire_style: str = ""

    def to_wire(self, style: str) -> dict[str, Any]:
        """
        Return the list record, cached until the session changes or style does.
        """
        if self.wire is not None and self.wire_style == style:
            return self.wire

        is_mixed = style == "mixed"
        form = self.form if is_mixed else PLAIN_FORM
        record: dict[str, Any] = {"session_id": self.session_id, "status": self.status}
        record.update(self.fields)
        if "started_at" in self.wire_times:
            record["started_at"] = self.wire_times["started_at"]
        elif self.started_nanos is not None:
            record["started_at"] = render_time(self.started_nanos, form)
        if "ended_at" in self.wire_times:
            record["ended_at"] = self.wire_times["ended_at"]
        elif self.ended_nanos is not None:
            record["ended_at"] = render_time(self.ended_nanos, form)
        elif not is_mixed:
            record["ended_at"] = None
        elif self.open_form != OPEN_ABSENT:
            record["ended_at"] = render_open(self.open_form)
        record.update(self.extra)
        self.wire, self.wire_style = record, style

        return record

    def forget_wire(self) -> None:
        """
        Drop the cached wire record after a change.
        """
        self.wire = None

    def quantize(self, nanos: int) -> int:
        """
        Cut an instant to the precision this session's time form shows.
        """
        return nanos - nanos % self.form.quantum_nanos()


class Weighted(Generic[T]):
    """
    Options with weights, drawn with one uniform number (faster than `choices`).
    """

    def __init__(self, pairs: Iterable[tuple[T, int]]) -> None:
        pairs = list(pairs)
        self.options = [option for option, _ in pairs]
        self.bounds = list(itertools.accumulate(weight for _, weight in pairs))

    def draw(self, rng: random.Random) -> T:
        """
        Return one option, as likely as its weight.
        """
        return self.options[bisect.bisect(self.bounds, rng.random() * self.bounds[-1])]


def pick(rng: random.Random, options: Sequence[T]) -> T:
    """
    Return one of the options, all equally likely.
    """
    return options[int(rng.random() * len(options))]


_FORM_DRAW: Final = Weighted(zip(FORMS, FORM_WEIGHTS, strict=True))
_SETTLED_DRAW: Final = Weighted(_SETTLED_MIX)
_RECENT_DRAW: Final = Weighted(_RECENT_MIX)


class SessionFactory:
    """
    Make sessions from one seed: the history at start, then later arrivals.

    Everything drawn comes from the seeded generator in a fixed order, so the
    same seed, count and anchor always give the same sessions.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - seeded test data, not secrets
        hosts = [
            f"{role}-{env}-{number:02d}.{region}.internal"
            for role in _ROLES
            for env in _ENVIRONMENTS
            for region in _REGIONS
            for number in range(1, 4)
        ]
        self.hostnames = sorted(self.rng.sample(hosts, 300))
        self._ids: set[str] = set()

    def new_id(self) -> str:
        """
        Return a session id not handed out before by this factory.
        """
        while True:
            session_id = f"ses_{self.rng.getrandbits(48):012x}"
            if session_id not in self._ids:
                self._ids.add(session_id)
                return session_id

    def resource_id(self, script: str | None) -> str:
        """
        Return a fresh resource id shaped after what the script provisions.
        """
        prefix = _SCRIPT_PREFIX.get(script or "", "res")
        return f"{prefix}-{self.rng.getrandbits(68):017x}"

    def history(self, *, count: int, anchor_nanos: int) -> list[Session]:
        """
        Return `count` sessions spread over ~6 months before the anchor, oldest first.

        The newest 1% (at least 3, at most 25) fall in the last 90 minutes, so
        some are still running.
        """
        rng = self.rng
        recent = min(count, max(3, min(count // 100, 25)))
        ages = [rng.random() * HISTORY_NANOS for _ in range(count - recent)]
        ages += [rng.random() * RECENT_NANOS for _ in range(recent)]
        ages.sort(reverse=True)

        # Every object made here lives on, so cyclic GC passes only cost time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return [
                self.make(
                    started_nanos=anchor_nanos - int(age) - NANOS,
                    settle_by_nanos=anchor_nanos,
                )
                for age in ages
            ]
        finally:
            if was_enabled:
                gc.enable()

    def make(
        self, *, started_nanos: int, settle_by_nanos: int, status: str | None = None
    ) -> Session:
        """
        Return one session started at the given instant, ended before `settle_by`.
        """
        rng = self.rng
        form = _FORM_DRAW.draw(rng)
        age = settle_by_nanos - started_nanos
        if status is None:
            is_recent = age < 3 * HOUR_NANOS
            status = (_RECENT_DRAW if is_recent else _SETTLED_DRAW).draw(rng)
        session = Session(
            session_id=self.new_id(),
            status=status,
            order_nanos=started_nanos,
            started_nanos=started_nanos - started_nanos % form.quantum_nanos(),
            ended_nanos=None,
            form=form,
            open_form=pick(rng, OPEN_FORMS),
            fields=self._fields(status),
        )
        if status == "queued":
            session.started_nanos = None
        elif status not in IN_FLIGHT:
            longest = (300 if status == "planned" else 2700) * NANOS
            duration = int((0.01 + rng.random() * 0.99) * min(longest, age))
            session.ended_nanos = session.quantize(started_nanos + duration)
        if status == "succeeded" and rng.random() < 0.3:
            session.extra["protected"] = True

        return session

    def _fields(self, status: str) -> dict[str, Any]:
        rng = self.rng
        script, _ = pick(rng, _SCRIPTS)
        fields: dict[str, Any] = {}
        roll = rng.random()
        if roll >= 0.023:
            fields["hostname"] = pick(rng, self.hostnames)
        elif roll >= 0.02:
            fields["hostname"] = ""
        if rng.random() >= 0.01:
            fields["username"] = pick(rng, _USERNAMES)
        if rng.random() >= 0.01:
            fields["script"] = script
        has_resource = status not in ("planned", "queued", "cancelled")
        if has_resource and (status != "failed" or rng.random() < 0.6):
            fields["resource_id"] = self.resource_id(script)

        return fields


def session_details(session: Session, *, seed: int) -> dict[str, Any]:
    """
    Return the fields only `show` sends, derived from the seed and the session.
    """
    rng = random.Random(f"{seed}:{session.session_id}:show")  # noqa: S311 - test data
    exit_code = _SETTLED_EXIT_CODES.get(session.status)
    if session.status == "failed":
        exit_code = rng.choice((1, 2, 127))
    if session.status in IN_FLIGHT:
        exit_code = None

    return {
        "plan_id": f"plan_{rng.getrandbits(64):016x}",
        "node": rng.choice(("node-eu-1", "node-eu-2", "node-us-1")),
        "tags": {
            "env": rng.choice(_ENVIRONMENTS),
            "team": rng.choice(("platform", "data", "payments", "search", "infra")),
            "cost_center": f"cc-{rng.randint(100, 999)}",
        },
        "exit_code": exit_code,
    }
