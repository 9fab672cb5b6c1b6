"""
Read a Terraform state pulled from a deployment node, and hide its secrets.

The module does no I/O: it takes JSON text, bytes or an already parsed object.
Two state formats are understood:

- format 4 (Terraform 0.12 and later): a flat ``resources`` list whose
  instances each carry ``attributes`` and the ``sensitive_attributes`` paths
  into them;
- format 3 (Terraform 0.7 to 0.11): a ``modules`` list, each module holding
  a ``resources`` object keyed by address, with flat string attributes and
  its own ``outputs``.

Formats 1 and 2, and any format not yet known, raise ``StateFormatError``.
JSON is parsed with the standard library because it keeps integers beyond
int64, which format 3 states can hold, exact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from vxcache.errors import StateFormatError

logger = logging.getLogger(__name__)

REDACTED: Final[str] = "(sensitive value)"

_MODES: Final = ("managed", "data")
_MISSING: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

# One step into an attribute value: a key of an object or a position in a list.
_Key = str | int
_Path = tuple[_Key, ...]


@dataclass(frozen=True, slots=True)
class TerraformResource:
    """
    One resource of a state, with all its instances counted together.

    ``address`` has no instance key (``module.net.aws_subnet.private``,
    ``data.aws_ami.ubuntu``). ``module`` is the module instance address as the
    state writes it (``module.a.module.b``, ``module.a["x"]``) and ``None`` for
    the root module. ``instance_count`` counts current objects only: deposed
    objects left by create-before-destroy are not instances of their own.
    """

    address: str
    mode: str
    type: str
    name: str
    provider: str | None
    module: str | None
    instance_count: int


@dataclass(frozen=True, slots=True)
class TerraformState:
    """
    What vxcache reads from a state: its metadata, resources and root outputs.

    Output names are sorted and cover the root module only, as format 4 keeps
    no other outputs. Empty strings for ``terraform_version`` and ``lineage``
    read as ``None``.
    """

    format_version: int
    terraform_version: str | None
    serial: int | None
    lineage: str | None
    resources: tuple[TerraformResource, ...]
    output_names: tuple[str, ...]
    sensitive_output_names: tuple[str, ...]

    @property
    def resource_count(self) -> int:
        """Return how many resources the state holds, data sources included."""
        return len(self.resources)


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
            f"Terraform state must be a JSON object, got {_kind(parsed)}."
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
            f"Terraform state must be a JSON object, got {_kind(state)}."
        )
    version = state.get("version")
    if version is None:
        raise StateFormatError(
            "Terraform state has no 'version' field, so it is not a state file."
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise StateFormatError(
            f"Terraform state field 'version' must be an integer, got {_kind(version)}."
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
    items = _optional_list(state, "resources", where)
    resources = tuple(
        _read_v4_resource(item, f"Terraform state resources[{position}]")
        for position, item in enumerate(items)
    )
    outputs = _optional_mapping(state, "outputs", where)
    names, sensitive_names = _read_outputs(outputs, f"{where} outputs")

    return TerraformState(
        format_version=4,
        terraform_version=_optional_str(state, "terraform_version", where),
        serial=_read_serial(state),
        lineage=_optional_str(state, "lineage", where),
        resources=resources,
        output_names=names,
        sensitive_output_names=sensitive_names,
    )


def _read_v4_resource(item: object, where: str) -> TerraformResource:
    resource = _require_mapping(item, where)
    mode = resource.get("mode")
    if mode not in _MODES:
        raise StateFormatError(
            f"{where} has mode {_describe(mode)}; expected 'managed' or 'data'."
        )
    type_ = _required_str(resource, "type", where)
    name = _required_str(resource, "name", where)
    module = _optional_str(resource, "module", where)

    instances = _optional_list(resource, "instances", where)
    current = 0
    for position, instance in enumerate(instances):
        fields = _require_mapping(instance, f"{where} instances[{position}]")
        if not fields.get("deposed"):
            current += 1

    return TerraformResource(
        address=_address(module, mode, type_, name),
        mode=mode,
        type=type_,
        name=name,
        provider=_optional_str(resource, "provider", where),
        module=module,
        instance_count=current,
    )


def _read_v3(state: Mapping[str, Any]) -> TerraformState:
    where = "Terraform state"
    resources: list[TerraformResource] = []
    names: tuple[str, ...] = ()
    sensitive_names: tuple[str, ...] = ()

    for position, item in enumerate(_optional_list(state, "modules", where)):
        module_where = f"Terraform state modules[{position}]"
        module_fields = _require_mapping(item, module_where)
        module = _read_v3_module_path(module_fields, module_where)
        resources.extend(_read_v3_resources(module_fields, module, module_where))
        outputs = _optional_mapping(module_fields, "outputs", module_where)
        found = _read_outputs(outputs, f"{module_where} outputs")
        if module is None:
            names, sensitive_names = found

    return TerraformState(
        format_version=3,
        terraform_version=_optional_str(state, "terraform_version", where),
        serial=_read_serial(state),
        lineage=_optional_str(state, "lineage", where),
        resources=tuple(resources),
        output_names=names,
        sensitive_output_names=sensitive_names,
    )


def _read_v3_module_path(module: Mapping[str, Any], where: str) -> str | None:
    path = module.get("path")
    if not isinstance(path, list) or not _is_module_path(path):
        raise StateFormatError(
            f"{where} field 'path' must be a list of module names starting "
            f"with 'root', got {_describe(path)}."
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
    for key, item in _optional_mapping(module_fields, "resources", where).items():
        entry_where = f"{where} resource {key!r}"
        entry = _require_mapping(item, entry_where)
        mode, type_, name = _parse_v3_key(key, entry_where)
        provider, count = grouped.get((mode, type_, name), (None, 0))
        provider = provider or _optional_str(entry, "provider", entry_where)
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
        output = _require_mapping(outputs[name], f"{where} {name!r}")
        flag = output.get("sensitive", False)
        if not isinstance(flag, bool):
            raise StateFormatError(
                f"{where} {name!r} field 'sensitive' must be true or false, "
                f"got {_kind(flag)}."
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
            f"or more, got {_describe(serial)}."
        )

    return serial


def _address(module: str | None, mode: str, type_: str, name: str) -> str:
    local = f"data.{type_}.{name}" if mode == "data" else f"{type_}.{name}"
    return f"{module}.{local}" if module else local


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


def _sensitive_paths(raw: object) -> Iterator[_Path]:
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


def _decode_path(raw_path: list[Any]) -> _Path | None:
    keys: list[_Key] = []
    for step in raw_path:
        key = _decode_step(step)
        if key is None:
            return None
        keys.append(key)

    return tuple(keys)


def _decode_step(step: object) -> _Key | None:
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


def _mirror_paths(mirror: object, prefix: _Path) -> Iterator[_Path]:
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


def _replace_at(attributes: dict[str, Any], path: _Path) -> int:
    container: Any = attributes
    for key in path[:-1]:
        container = _child(container, key)
        if container is _MISSING:
            return 0
    if _child(container, path[-1]) is _MISSING:
        return 0
    container[path[-1]] = REDACTED

    return 1


def _child(container: Any, key: _Key) -> Any:
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, _MISSING)
    if isinstance(container, list) and isinstance(key, int):
        return container[key] if 0 <= key < len(container) else _MISSING

    return _MISSING


def _copy_json(value: Any) -> Any:
    # About twice as fast as copy.deepcopy on a JSON tree: scalars are
    # immutable and shared, only objects and lists are rebuilt, and the
    # common scalar children skip the recursive call altogether.
    if isinstance(value, dict):
        return {
            key: item if item.__class__ in _SCALARS else _copy_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            item if item.__class__ in _SCALARS else _copy_json(item) for item in value
        ]
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_copy_json(item) for item in value]

    return value


def _require_mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateFormatError(f"{where} must be a JSON object, got {_kind(value)}.")

    return value


def _optional_list(fields: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise StateFormatError(
            f"{where} field {key!r} must be a list, got {_kind(value)}."
        )

    return value


def _optional_mapping(
    fields: Mapping[str, Any], key: str, where: str
) -> Mapping[str, Any]:
    value = fields.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StateFormatError(
            f"{where} field {key!r} must be a JSON object, got {_kind(value)}."
        )

    return value


def _optional_str(fields: Mapping[str, Any], key: str, where: str) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StateFormatError(
            f"{where} field {key!r} must be a string, got {_kind(value)}."
        )

    return value


def _required_str(fields: Mapping[str, Any], key: str, where: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        raise StateFormatError(
            f"{where} field {key!r} must be a non-empty string, got {_describe(value)}."
        )

    return value


def _kind(value: object) -> str:
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


def _describe(value: object) -> str:
    # Quote short strings so a message names the offending value, but never
    # echo long text: it could be part of a secret.
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)

    return _kind(value)
