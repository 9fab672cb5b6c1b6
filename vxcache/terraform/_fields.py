"""Checked access to the fields of a parsed state, with messages that name them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vxcache.errors import StateFormatError


def require_mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateFormatError(f"{where} must be a JSON object, got {kind(value)}.")

    return value


def optional_list(fields: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise StateFormatError(
            f"{where} field {key!r} must be a list, got {kind(value)}."
        )

    return value


def optional_mapping(
    fields: Mapping[str, Any], key: str, where: str
) -> Mapping[str, Any]:
    value = fields.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StateFormatError(
            f"{where} field {key!r} must be a JSON object, got {kind(value)}."
        )

    return value


def optional_str(fields: Mapping[str, Any], key: str, where: str) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StateFormatError(
            f"{where} field {key!r} must be a string, got {kind(value)}."
        )

    return value


def required_str(fields: Mapping[str, Any], key: str, where: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        raise StateFormatError(
            f"{where} field {key!r} must be a non-empty string, got {describe(value)}."
        )

    return value


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"

    return type(value).__name__


def describe(value: object) -> str:
    # Quote short strings so a message names the offending value, but never
    # echo long text: it could be part of a secret.
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)

    return kind(value)
