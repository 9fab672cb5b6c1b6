"""
Seeded Terraform state (format version 4) for a session, padded to a target size.

The state is drawn from (seed, session id, status), so pulling a session twice
gives the same bytes until its status changes. Statuses that leave nothing
deployed (a dry-run plan, a queued run, a destroyed resource) get a state with
no resources.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson

from vxcache.devnode._artifacts import build_artifacts

AWS: Final = 'provider["registry.terraform.io/hashicorp/aws"]'
RANDOM: Final = 'provider["registry.terraform.io/hashicorp/random"]'
EMPTY_STATUSES: Final = frozenset({"planned", "queued", "cancelled", "deleted"})
# Later lifecycle steps write the state again, so its serial grows.
_SERIAL_STEP: Final = {"failed": 1, "succeeded": 2, "rolled_back": 3, "deleting": 3}
_PRIVATE: Final = base64.b64encode(b'{"schema_version":"1"}').decode()
_ZONES: Final = ("a", "b", "c")
_FLEET_CHUNK: Final = 25


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """
    What the state generator needs to know about a session.
    """

    seed: int
    session_id: str
    status: str
    script: str
    hostname: str


@dataclass(frozen=True, slots=True)
class PullParts:
    """
    The state as serialized JSON, and the artifacts that go with it.
    """

    state_json: bytes
    artifacts: list[dict[str, str]]


class _Draw:
    """Seeded helpers for ids, addresses and secrets."""

    def __init__(self, rng: random.Random, region: str) -> None:
        self.rng = rng
        self.region = region
        self.account = f"{rng.randrange(10**11, 10**12):012d}"

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def secret(self, length: int) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*-_"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def ip(self, first: int = 10) -> str:
        second, third = self.rng.randrange(256), self.rng.randrange(256)
        return f"{first}.{second}.{third}.{self.rng.randrange(1, 255)}"

    def arn(self, service: str, kind: str, ident: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{kind}/{ident}"


def _resource(
    kind: str,
    name: str,
    instances: list[dict[str, Any]],
    *,
    mode: str = "managed",
    module: str | None = None,
    provider: str = AWS,
) -> dict[str, Any]:
    resource: dict[str, Any] = {}
    if module is not None:
        resource["module"] = module
    resource.update(mode=mode, type=kind, name=name, provider=provider)
    resource["instances"] = instances

    return resource


def _instance(
    attributes: dict[str, Any],
    *,
    index_key: int | str | None = None,
    sensitive: tuple[str, ...] = (),
    dependencies: tuple[str, ...] = (),
) -> dict[str, Any]:
    instance: dict[str, Any] = {}
    if index_key is not None:
        instance["index_key"] = index_key
    instance["schema_version"] = 1
    instance["attributes"] = attributes
    instance["sensitive_attributes"] = [
        [{"type": "get_attr", "value": name}] for name in sensitive
    ]
    instance["private"] = _PRIVATE
    if dependencies:
        instance["dependencies"] = list(dependencies)

    return instance


def _tags(facts: SessionFacts, name: str) -> dict[str, str]:
    return {"Name": name, "ManagedBy": "vxnode", "Session": facts.session_id}


def _core_resources(
    draw: _Draw, facts: SessionFacts, password: str
) -> list[dict[str, Any]]:
    vpc_id = f"vpc-{draw.hex(17)}"
    cidr = f"10.{draw.rng.randrange(256)}"
    subnets = [
        _instance(
            {
                "id": f"subnet-{draw.hex(17)}",
                "arn": draw.arn("ec2", "subnet", f"subnet-{draw.hex(17)}"),
                "vpc_id": vpc_id,
                "cidr_block": f"{cidr}.{index * 16}.0/20",
                "availability_zone": f"{draw.region}{_ZONES[index]}",
                "map_public_ip_on_launch": False,
                "tags": _tags(facts, f"private-{_ZONES[index]}"),
            },
            index_key=index,
        )
        for index in range(3)
    ]
    database = {
        "id": f"db-{draw.hex(26).upper()}",
        "identifier": f"{facts.session_id.replace('_', '-')}-db",
        "engine": "postgres",
        "engine_version": "16.3",
        "instance_class": draw.rng.choice(
            ("db.t3.micro", "db.t3.medium", "db.m6g.large")
        ),
        "allocated_storage": draw.rng.choice((20, 50, 100)),
        "username": "app",
        "password": password,
        "port": 5432,
        "address": f"{facts.session_id}.c{draw.hex(10)}.{draw.region}.rds.amazonaws.com",
        "multi_az": draw.rng.random() < 0.3,
        "storage_encrypted": True,
        "tags": _tags(facts, "main-db"),
    }
    hosts = {
        key: _instance(
            {
                "id": f"i-{draw.hex(17)}",
                "ami": f"ami-{draw.hex(17)}",
                "instance_type": draw.rng.choice(
                    ("t3.small", "t3.large", "m6i.xlarge")
                ),
                "private_ip": draw.ip(),
                "public_ip": draw.ip(draw.rng.randrange(3, 200)),
                "user_data": None,
                "tags": _tags(facts, f"{key}.{facts.hostname}"),
            },
            index_key=key,
            dependencies=("module.network.aws_subnet.private",),
        )
        for key in ("web-a", "web-b")
    }
    identity = {
        "account_id": draw.account,
        "arn": f"arn:aws:iam::{draw.account}:user/terraform",
        "id": draw.account,
        "user_id": f"AIDA{draw.hex(16).upper()}",
    }
    secret = {"id": "none", "length": 24, "special": True, "result": password}
    runner = {
        "id": str(uuid.UUID(int=draw.rng.getrandbits(128), version=4)),
        "input": {"script": facts.script, "host": facts.hostname},
    }

    return [
        _resource("aws_caller_identity", "current", [_instance(identity)], mode="data"),
        _resource(
            "aws_vpc",
            "this",
            [_instance({"id": vpc_id, "cidr_block": f"{cidr}.0.0/16"})],
            module="module.network",
        ),
        _resource("aws_subnet", "private", subnets, module="module.network"),
        _resource(
            "random_password",
            "db",
            [_instance(secret, sensitive=("result",))],
            provider=RANDOM,
        ),
        _resource(
            "aws_db_instance",
            "main",
            [
                _instance(
                    database,
                    sensitive=("password",),
                    dependencies=("random_password.db",),
                )
            ],
        ),
        _resource("aws_instance", "app", list(hosts.values())),
        _resource(
            "terraform_data",
            "install",
            [_instance(runner)],
            provider='provider["terraform.io/builtin/terraform"]',
        ),
    ]


def _fleet_resource(draw: _Draw, facts: SessionFacts, number: int) -> dict[str, Any]:
    instances = [
        _instance(
            {
                "id": f"i-{draw.hex(17)}",
                "ami": f"ami-{draw.hex(17)}",
                "instance_type": "c6i.large",
                "private_ip": draw.ip(),
                "subnet_id": f"subnet-{draw.hex(17)}",
                "vpc_security_group_ids": [f"sg-{draw.hex(17)}"],
                "root_block_device": [{"volume_size": 40, "volume_type": "gp3"}],
                "tags": _tags(facts, f"worker-{number}-{index}"),
            },
            index_key=index,
        )
        for index in range(_FLEET_CHUNK)
    ]

    return _resource(
        "aws_instance", f"worker_{number}", instances, module="module.fleet"
    )


def _outputs(
    resources: list[dict[str, Any]], password: str, token: str
) -> dict[str, Any]:
    database = resources[4]["instances"][0]["attributes"]
    hosts = resources[5]["instances"]
    ips = {item["index_key"]: item["attributes"]["private_ip"] for item in hosts}

    return {
        "db_password": {"value": password, "type": "string", "sensitive": True},
        "api_token": {"value": token, "type": "string", "sensitive": True},
        "db_endpoint": {"value": f"{database['address']}:5432", "type": "string"},
        "vpc_id": {
            "value": resources[1]["instances"][0]["attributes"]["id"],
            "type": "string",
        },
        "host_ips": {"value": ips, "type": ["map", "string"]},
    }


def build_pull_parts(facts: SessionFacts, *, target_bytes: int) -> PullParts:
    """
    Return the state and artifacts a pull of this session sends.
    """
    base = random.Random(f"{facts.seed}:{facts.session_id}:state")  # noqa: S311 - test data
    lineage = str(uuid.UUID(int=base.getrandbits(128), version=4))
    terraform_version = f"1.9.{base.randrange(9)}"
    draw = _Draw(base, base.choice(("eu-west-1", "eu-central-1", "us-east-1")))
    password = draw.secret(24)
    token = f"tok_{draw.hex(32)}"
    resources = _core_resources(draw, facts, password)
    outputs = _outputs(resources, password, token)
    serial = base.randrange(1, 30) + _SERIAL_STEP.get(facts.status, 0)
    artifacts = build_artifacts(facts.script, resources, outputs)

    if facts.status in EMPTY_STATUSES:
        resources, outputs = [], {}
    state: dict[str, Any] = {
        "version": 4,
        "terraform_version": terraform_version,
        "serial": serial,
        "lineage": lineage,
        "outputs": outputs,
        "resources": resources,
        "check_results": None,
    }
    state_json = orjson.dumps(state)
    if resources:
        state_json = _pad(state, state_json, draw, facts, target_bytes)

    return PullParts(state_json=state_json, artifacts=artifacts)


def _pad(
    state: dict[str, Any],
    state_json: bytes,
    draw: _Draw,
    facts: SessionFacts,
    target_bytes: int,
) -> bytes:
    """Add fleet resources until the serialized state reaches the target size."""
    size = len(state_json)
    number = 0
    while size < target_bytes:
        resource = _fleet_resource(draw, facts, number)
        state["resources"].append(resource)
        size += len(orjson.dumps(resource)) + 1
        number += 1
    if number == 0:
        return state_json

    return orjson.dumps(state)
