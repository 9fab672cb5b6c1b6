"""Hide the sensitive values of a state: outputs and marked attributes."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from vxcache.terraform._model import MISSING, REDACTED, SCALARS, Key, Path
from vxcache.terraform._read import read_state

logger = logging.getLogger(__name__)


def redact_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """
    Return a deep copy of a state with every sensitive value hidden.

    Each hidden value becomes ``REDACTED``; the count of values replaced comes
    back beside the copy. The input is never changed. Hidden are the values
    of outputs marked ``sensitive`` (both formats) and, in format 4, every
    attribute value that an instance's ``sensitive_attributes`` paths or a
    ``sensitive_values`` mirror point at; a path that leads nowhere is
    skipped. Format 3 records no attribute sensitivity, so only its outputs
    can be hidden.

    Raises:
        StateFormatError: the state does not have a shape ``read_state``
            accepts; nothing is copied then.
    """
    read_state(state)
    copied: dict[str, Any] = _copy_json(state)

    if copied["version"] == 4:
        count = _redact_outputs(copied.get("outputs"))
        for resource in copied.get("resources") or ():
            for instance in resource.get("instances") or ():
                count += _redact_instance(instance)
    else:
        count = sum(
            _redact_outputs(module.get("outputs"))
            for module in copied.get("modules") or ()
        )

    logger.debug("state redacted values=%d", count)
    return copied, count


def _redact_outputs(outputs: object) -> int:
    if not isinstance(outputs, dict):
        return 0
    count = 0
    for output in outputs.values():
        if output.get("sensitive") is True and "value" in output:
            output["value"] = REDACTED
            count += 1

    return count


def _redact_instance(instance: dict[str, Any]) -> int:
    attributes = instance.get("attributes")
    if not isinstance(attributes, dict):
        return 0
    paths = set(_sensitive_paths(instance.get("sensitive_attributes")))
    paths.update(_mirror_paths(instance.get("sensitive_values"), ()))

    if () in paths:
        # The whole object is sensitive: every attribute in it goes.
        for key in attributes:
            attributes[key] = REDACTED
        return len(attributes)

    # Shorter paths first: once a value is hidden, the longer paths into it
    # no longer resolve, so nothing is hidden or counted twice.
    return sum(_replace_at(attributes, path) for path in sorted(paths, key=len))


def _sensitive_paths(raw: object) -> Iterator[Path]:
    # Terraform writes a list of paths, each a list of steps such as
    # {"type": "get_attr", "value": "password"} or
    # {"type": "index", "value": {"value": 2, "type": "number"}}.
    # A mirror object, a bare attribute name in place of a path, and bare
    # keys or positions in place of steps are accepted too, hiding more
    # rather than less when a writer strays from that form.
    if isinstance(raw, Mapping):
        yield from _mirror_paths(raw, ())
        return
    if not isinstance(raw, list):
        return
    for raw_path in raw:
        if isinstance(raw_path, str):
            yield (raw_path,)
        elif isinstance(raw_path, list):
            path = _decode_path(raw_path)
            if path is not None:
                yield path


def _decode_path(raw_path: list[Any]) -> Path | None:
    keys: list[Key] = []
    for step in raw_path:
        key = _decode_step(step)
        if key is None:
            return None
        keys.append(key)

    return tuple(keys)


def _decode_step(step: object) -> Key | None:
    if isinstance(step, Mapping):
        kind, value = step.get("type"), step.get("value")
        if kind == "get_attr":
            return value if isinstance(value, str) else None
        if kind != "index":
            return None
        step = value.get("value") if isinstance(value, Mapping) else value
    if isinstance(step, bool):
        return None
    if isinstance(step, str | int):
        return step
    if isinstance(step, float) and step.is_integer():
        return int(step)

    return None


def _mirror_paths(mirror: object, prefix: Path) -> Iterator[Path]:
    # A mirror has the shape of the attributes, with true where a value is
    # sensitive: {"password": true, "tags": {"token": true}, "keys": [false, true]}.
    if mirror is True:
        yield prefix
    elif isinstance(mirror, Mapping):
        for key, flag in mirror.items():
            if isinstance(key, str):
                yield from _mirror_paths(flag, (*prefix, key))
    elif isinstance(mirror, list):
        for position, flag in enumerate(mirror):
            yield from _mirror_paths(flag, (*prefix, position))


def _replace_at(attributes: dict[str, Any], path: Path) -> int:
    container: Any = attributes
    for key in path[:-1]:
        container = _child(container, key)
        if container is MISSING:
            return 0
    if _child(container, path[-1]) is MISSING:
        return 0
    container[path[-1]] = REDACTED

    return 1


def _child(container: Any, key: Key) -> Any:
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, MISSING)
    if isinstance(container, list) and isinstance(key, int):
        return container[key] if 0 <= key < len(container) else MISSING

    return MISSING


def _copy_json(value: Any) -> Any:
    # About twice as fast as copy.deepcopy on a JSON tree: scalars are
    # immutable and shared, only objects and lists are rebuilt, and the
    # common scalar children skip the recursive call altogether.
    if isinstance(value, dict):
        return {
            key: item if item.__class__ in SCALARS else _copy_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            item if item.__class__ in SCALARS else _copy_json(item) for item in value
        ]
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_copy_json(item) for item in value]

    return value
