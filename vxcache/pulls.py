"""Turn a pull answer into what the store keeps: redacted state, resources, artifacts."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import json
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

from vxcache import terraform
from vxcache._time import utc_now
from vxcache.client import PullResult
from vxcache.errors import StateFormatError
from vxcache.store import ArtifactInput, PullInput, StateInput

logger = logging.getLogger(__name__)

_STATE_KEYS = ("terraform_state", "state", "tfstate")
# Sensitive values shorter than this are hidden in the state only: masking them
# in artifacts would scribble over ordinary words and numbers.
_MIN_MASKED_LENGTH: Final = 6
# The most a gzipped artifact is unpacked to when looking for sensitive values.
_GUNZIP_LIMIT: Final = 64 * 1024**2
_BASE64_TEXT: Final = re.compile(r"[A-Za-z0-9+/\r\n]{16,}={0,2}")


def dump_json(document: Any) -> bytes:
    """Serialise JSON, keeping integers past 64 bits that Terraform states may hold."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, separators=(",", ":")).encode()


def pull_input(result: PullResult, *, store_sensitive: bool) -> PullInput:
    """
    Prepare a pull for the store, redacting the state unless told not to.

    Redaction hides the state's sensitive values and masks those same values
    wherever else the answer carries them: artifacts such as ``outputs.json``,
    gzipped bundles and the answer kept verbatim. A state that cannot be read
    cannot be redacted, so it is not kept at all.
    """
    body = dict(result.body)
    artifacts = _unique_artifacts(result)
    document = result.state
    redacted = 0
    if document is not None and not store_sensitive:
        try:
            hidden, redacted = terraform.redact_state(document)
        except StateFormatError as exc:
            logger.warning(
                "state not kept, it cannot be redacted session=%s error=%s",
                result.session_id,
                exc,
            )
            hidden = None
        masks = _Masks(_hidden_values(document, hidden) if hidden is not None else ())
        body = masks.json_object(
            {k: v for k, v in body.items() if k not in _STATE_KEYS}
        )
        for key in _STATE_KEYS:
            if key in result.body:
                body[key] = hidden
        artifacts = tuple(
            dataclasses.replace(artifact, content=masks.content(artifact.content))
            for artifact in artifacts
        )
        document = hidden
    state = _state_input(result.session_id, document) if document is not None else None

    return PullInput(
        session_id=result.session_id,
        pulled_at=utc_now(),
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        body=dump_json(body),
        redacted_values=redacted,
        artifacts=artifacts,
        state=state,
    )


def _hidden_values(original: Any, redacted: Any) -> Iterator[str]:
    """Yield the strings redaction hid: REDACTED in the copy, something else before."""
    if isinstance(redacted, str) and redacted == terraform.REDACTED:
        if original != redacted:
            yield from _strings(original)
    elif isinstance(original, dict) and isinstance(redacted, dict):
        for key in original.keys() & redacted.keys():
            yield from _hidden_values(original[key], redacted[key])
    elif isinstance(original, list) and isinstance(redacted, list):
        for item, copied in zip(original, redacted, strict=False):
            yield from _hidden_values(item, copied)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class _Masks:
    """Overwrite sensitive values, as written raw or inside JSON text, with asterisks."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) >= _MIN_MASKED_LENGTH:
                # As written in plain text, and inside JSON text (ASCII or not).
                forms.update(
                    (
                        value,
                        json.dumps(value)[1:-1],
                        json.dumps(value, ensure_ascii=False)[1:-1],
                    )
                )
        # Longest first, so a value inside another is not masked half-way.
        self.texts = sorted(forms, key=len, reverse=True)
        self.raw = [text.encode("utf-8", "surrogatepass") for text in self.texts]

    def text(self, value: str) -> str:
        for needle in self.texts:
            if needle in value:
                value = value.replace(needle, "*" * len(needle))
        return value

    def content(self, data: bytes) -> bytes:
        """Mask plain bytes, and the content of gzip data (keeping every length)."""
        if not self.raw:
            return data
        if data[:2] == b"\x1f\x8b":
            unpacked = _gunzip(data)
            if unpacked is not None:
                masked = self.content(unpacked)
                return data if masked == unpacked else gzip.compress(masked, mtime=0)
        for needle in self.raw:
            if needle in data:
                data = data.replace(needle, b"*" * len(needle))
        return data

    def json_object(self, value: dict[str, Any]) -> dict[str, Any]:
        return {key: self.json(item) for key, item in value.items()}

    def json(self, value: Any) -> Any:
        """Mask every string of a JSON value, and the content of base64 strings."""
        if not self.raw:
            return value
        if isinstance(value, dict):
            return self.json_object(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if not isinstance(value, str):
            return value
        masked = self.text(value)
        if _BASE64_TEXT.fullmatch(masked):
            try:
                decoded = base64.b64decode(masked)
            except (binascii.Error, ValueError):
                return masked
            hidden = self.content(decoded)
            if hidden != decoded:
                return base64.b64encode(hidden).decode("ascii")
        return masked


def _gunzip(data: bytes) -> bytes | None:
    """Unpack every gzip member within the limit, or return None."""
    parts: list[bytes] = []
    size = 0
    try:
        while data:
            unpacker = zlib.decompressobj(wbits=31)
            part = unpacker.decompress(data, _GUNZIP_LIMIT - size + 1)
            size += len(part)
            if size > _GUNZIP_LIMIT or not unpacker.eof:
                return None
            parts.append(part)
            data = unpacker.unused_data
    except zlib.error:
        return None
    return b"".join(parts)


def _state_input(session_id: str, document: dict[str, Any]) -> StateInput | None:
    try:
        summary = terraform.read_state(document)
    except StateFormatError as exc:
        logger.warning("state not read session=%s error=%s", session_id, exc)
        return None
    return StateInput(
        document=dump_json(document),
        format_version=summary.format_version,
        terraform_version=summary.terraform_version,
        serial=summary.serial,
        lineage=summary.lineage,
        resources=summary.resources,
    )


def _unique_artifacts(result: PullResult) -> tuple[ArtifactInput, ...]:
    artifacts: dict[str, ArtifactInput] = {}
    for artifact in result.artifacts:
        if artifact.name in artifacts:
            logger.warning(
                "duplicate artifact name session=%s name=%r; first kept",
                result.session_id,
                artifact.name,
            )
            continue
        kind = "binary" if artifact.encoding == "base64" else "text"
        artifacts[artifact.name] = ArtifactInput(
            name=artifact.name,
            content=artifact.content,
            kind=kind,
            content_type=artifact.content_type,
        )
    return tuple(artifacts.values())
