"""Read format 3 and format 4 states into their metadata and resources."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vxcache.errors import StateFormatError
from vxcache.terraform._fields import (
    describe,
    kind,
    optional_list,
    optional_mapping,
    optional_str,
    require_mapping,
    required_str,
)
from vxcache.terraform._model import MODES, TerraformResource, TerraformState


def load_state(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """
    Return a pulled state as a dict, parsing it when it is JSON text or bytes.

    A JSON string whose content is itself the state's JSON (a double-encoded
    answer) is unwrapped once. A dict is returned as it is, not copied.

    Example: ``load_state(response.content)["serial"]``.

    Raises:
        StateFormatError: the input is not JSON or not a JSON object.
    """
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, bytes | bytearray | str):
        raise StateFormatError(
            f"Terraform state must be JSON text, bytes or a mapping, "
            f"got {type(raw).__name__}."
        )

    parsed = _parse_json(raw)
    if isinstance(parsed, str):
        parsed = _parse_json(parsed)
    if not isinstance(parsed, dict):
        raise StateFormatError(
            f"Terraform state must be a JSON object, got {kind(parsed)}."
        )

    return parsed


def read_state(state: Mapping[str, Any]) -> TerraformState:
    """
    Return the metadata, resources and output names of a parsed state.

    Raises:
        StateFormatError: the format version is not 3 or 4, or a field the
            reader relies on has the wrong type.
    """
    if _format_version(state) == 4:
        return _read_v4(state)

    return _read_v3(state)


def _parse_json(text: str | bytes | bytearray) -> Any:
    if isinstance(text, str) and text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise StateFormatError(
            f"Terraform state is not UTF-8 text: {exc.reason} at byte {exc.start}."
        ) from exc
    except json.JSONDecodeError as exc:
        raise StateFormatError(
            f"Terraform state is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}."
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise StateFormatError(
            f"Terraform state could not be parsed as JSON: {exc}."
        ) from exc


def _format_version(state: object) -> int:
    if not isinstance(state, Mapping):
        raise StateFormatError(
            f"Terraform state must be a JSON object, got {kind(state)}."
        )
    version = state.get("version")
    if version is None:
        raise StateFormatError(
            "Terraform state has no 'version' field, so it is not a state file."
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise StateFormatError(
            f"Terraform state field 'version' must be an integer, got {kind(version)}."
        )
    if version in (1, 2):
        raise StateFormatError(
            f"Terraform state format {version} is too old to read; vxcache "
            f"reads formats 3 and 4, which Terraform 0.7 and later write."
        )
    if version not in (3, 4):
        raise StateFormatError(
            f"Terraform state format {version} is unknown; vxcache reads "
            f"formats 3 and 4."
        )

    return version


def _read_v4(state: Mapping[str, Any]) -> TerraformState:
    where = "Terraform state"
    items = optional_list(state, "resources", where)
    resources = tuple(
        _read_v4_resource(item, f"Terraform state resources[{position}]")
        for position, item in enumerate(items)
    )
    outputs = optional_mapping(state, "outputs", where)
    names, sensitive_names = _read_outputs(outputs, f"{where} outputs")

    return TerraformState(
        format_version=4,
        terraform_version=optional_str(state, "terraform_version", where),
        serial=_read_serial(state),
        lineage=optional_str(state, "lineage", where),
        resources=resources,
        output_names=names,
        sensitive_output_names=sensitive_names,
    )


def _read_v4_resource(item: object, where: str) -> TerraformResource:
    resource = require_mapping(item, where)
    mode = resource.get("mode")
    if mode not in MODES:
        raise StateFormatError(
            f"{where} has mode {describe(mode)}; expected 'managed' or 'data'."
        )
    type_ = required_str(resource, "type", where)
    name = required_str(resource, "name", where)
    module = optional_str(resource, "module", where)

    instances = optional_list(resource, "instances", where)
    current = 0
    for position, instance in enumerate(instances):
        fields = require_mapping(instance, f"{where} instances[{position}]")
        if not fields.get("deposed"):
            current += 1

    return TerraformResource(
        address=_address(module, mode, type_, name),
        mode=mode,
        type=type_,
        name=name,
        provider=optional_str(resource, "provider", where),
        module=module,
        instance_count=current,
    )


def _read_v3(state: Mapping[str, Any]) -> TerraformState:
    where = "Terraform state"
    resources: list[TerraformResource] = []
    names: tuple[str, ...] = ()
    sensitive_names: tuple[str, ...] = ()

    for position, item in enumerate(optional_list(state, "modules", where)):
        module_where = f"Terraform state modules[{position}]"
        module_fields = require_mapping(item, module_where)
        module = _read_v3_module_path(module_fields, module_where)
        resources.extend(_read_v3_resources(module_fields, module, module_where))
        outputs = optional_mapping(module_fields, "outputs", module_where)
        found = _read_outputs(outputs, f"{module_where} outputs")
        if module is None:
            names, sensitive_names = found

    return TerraformState(
        format_version=3,
        terraform_version=optional_str(state, "terraform_version", where),
        serial=_read_serial(state),
        lineage=optional_str(state, "lineage", where),
        resources=tuple(resources),
        output_names=names,
        sensitive_output_names=sensitive_names,
    )


def _read_v3_module_path(module: Mapping[str, Any], where: str) -> str | None:
    path = module.get("path")
    if not isinstance(path, list) or not _is_module_path(path):
        raise StateFormatError(
            f"{where} field 'path' must be a list of module names starting "
            f"with 'root', got {describe(path)}."
        )

    return ".".join(f"module.{step}" for step in path[1:]) or None


def _is_module_path(path: list[Any]) -> bool:
    names_ok = all(isinstance(step, str) and step for step in path)
    return bool(path) and path[0] == "root" and names_ok


def _read_v3_resources(
    module_fields: Mapping[str, Any], module: str | None, where: str
) -> list[TerraformResource]:
    # Format 3 keys each instance separately ("aws_instance.web.1"), so
    # instances of one resource are gathered under (mode, type, name).
    grouped: dict[tuple[str, str, str], tuple[str | None, int]] = {}
    for key, item in optional_mapping(module_fields, "resources", where).items():
        entry_where = f"{where} resource {key!r}"
        entry = require_mapping(item, entry_where)
        mode, type_, name = _parse_v3_key(key, entry_where)
        provider, count = grouped.get((mode, type_, name), (None, 0))
        provider = provider or optional_str(entry, "provider", entry_where)
        if entry.get("primary") is not None:
            count += 1
        grouped[(mode, type_, name)] = (provider, count)

    return [
        TerraformResource(
            address=_address(module, mode, type_, name),
            mode=mode,
            type=type_,
            name=name,
            provider=provider,
            module=module,
            instance_count=count,
        )
        for (mode, type_, name), (provider, count) in grouped.items()
    ]


def _parse_v3_key(key: str, where: str) -> tuple[str, str, str]:
    parts = key.split(".")
    mode = "managed"
    if parts[0] == "data":
        mode, parts = "data", parts[1:]
    has_index = len(parts) == 3 and parts[2].isdigit()
    if not (len(parts) == 2 or has_index) or not all(parts[:2]):
        raise StateFormatError(
            f"{where} has a key that is not 'TYPE.NAME', 'TYPE.NAME.INDEX' "
            f"or 'data.TYPE.NAME'."
        )

    return mode, parts[0], parts[1]


def _read_outputs(
    outputs: Mapping[str, Any], where: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = tuple(sorted(outputs))
    sensitive: list[str] = []
    for name in names:
        output = require_mapping(outputs[name], f"{where} {name!r}")
        flag = output.get("sensitive", False)
        if not isinstance(flag, bool):
            raise StateFormatError(
                f"{where} {name!r} field 'sensitive' must be true or false, "
                f"got {kind(flag)}."
            )
        if flag:
            sensitive.append(name)

    return names, tuple(sensitive)


def _read_serial(state: Mapping[str, Any]) -> int | None:
    serial = state.get("serial")
    if serial is None:
        return None
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise StateFormatError(
            f"Terraform state field 'serial' must be a whole number of zero "
            f"or more, got {describe(serial)}."
        )

    return serial


def _address(module: str | None, mode: str, type_: str, name: str) -> str:
    local = f"data.{type_}.{name}" if mode == "data" else f"{type_}.{name}"
    return f"{module}.{local}" if module else local
