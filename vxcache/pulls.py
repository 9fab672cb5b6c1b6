"""Turn a pull answer into what the store keeps: redacted state, resources, artifacts."""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson

from vxcache import terraform
from vxcache._time import utc_now
from vxcache.client import PullResult
from vxcache.errors import StateFormatError
from vxcache.store import ArtifactInput, PullInput, ResourceInput, StateInput

logger = logging.getLogger(__name__)

_STATE_KEYS = ("terraform_state", "state", "tfstate")


def dump_json(document: Any) -> bytes:
    """Serialise JSON, keeping integers past 64 bits that Terraform states may hold."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, separators=(",", ":")).encode()


def pull_input(result: PullResult, *, store_sensitive: bool) -> PullInput:
    """Prepare a pull for the store, redacting the state unless told not to."""
    body = dict(result.body)
    state = None
    redacted = 0
    if result.state is not None:
        document = result.state
        if not store_sensitive:
            document, redacted = terraform.redact_state(document)
            for key in _STATE_KEYS:
                if key in body:
                    body[key] = document
        state = _state_input(result.session_id, document)

    return PullInput(
        session_id=result.session_id,
        pulled_at=utc_now(),
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        body=dump_json(body),
        redacted_values=redacted,
        artifacts=_unique_artifacts(result),
        state=state,
    )


def _state_input(session_id: str, document: dict[str, Any]) -> StateInput | None:
    try:
        summary = terraform.read_state(document)
    except StateFormatError as exc:
        logger.warning("state not read session=%s error=%s", session_id, exc)
        return None
    resources = tuple(
        ResourceInput(
            address=resource.address,
            mode=resource.mode,
            type=resource.type,
            name=resource.name,
            provider=resource.provider,
            module=resource.module,
            instance_count=resource.instance_count,
        )
        for resource in summary.resources
    )
    return StateInput(
        document=dump_json(document),
        format_version=summary.format_version,
        terraform_version=summary.terraform_version,
        serial=summary.serial,
        lineage=summary.lineage,
        resources=resources,
    )


def _unique_artifacts(result: PullResult) -> tuple[ArtifactInput, ...]:
    artifacts: dict[str, ArtifactInput] = {}
    for artifact in result.artifacts:
        if artifact.name in artifacts:
            logger.warning("duplicate artifact name session=%s name=%r; first kept",
                           result.session_id, artifact.name)
            continue
        kind = "binary" if artifact.encoding == "base64" else "text"
        artifacts[artifact.name] = ArtifactInput(
            name=artifact.name,
            content=artifact.content,
            kind=kind,
            content_type=artifact.content_type,
        )
    return tuple(artifacts.values())
