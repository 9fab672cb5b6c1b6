"""Tests for reading and redacting pulled Terraform state."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from vxcache.errors import StateFormatError, UpstreamDataError
from vxcache.terraform import (
    REDACTED,
    TerraformResource,
    load_state,
    read_state,
    redact_state,
)

DATA = Path(__file__).parent / "data" / "tfstate"
V3 = "v3-bigint-modules.tfstate"
V4_CBD = "v4-module-create-before-destroy.tfstate"
V4_ATTRIBUTE = "v4-sensitive-attribute.tfstate"
V4_OUTPUTS = "v4-sensitive-outputs.tfstate"
BIG_HASH = 10669755453527594976  # beyond int64, from the v3 state's backend


def load(name: str) -> dict[str, Any]:
    return load_state((DATA / name).read_bytes())


def get_attr(name: str) -> dict[str, Any]:
    return {"type": "get_attr", "value": name}


def index(key: str | int) -> dict[str, Any]:
    kind = "number" if isinstance(key, int) else "string"
    return {"type": "index", "value": {"value": key, "type": kind}}


def v4_state(*instances: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A small format 4 state with one resource holding ``instances``."""
    resource = {
        "mode": "managed",
        "type": "test_thing",
        "name": "one",
        "provider": 'provider["registry.terraform.io/hashicorp/test"]',
        "instances": list(instances),
    }
    state = {
        "version": 4,
        "terraform_version": "1.9.5",
        "serial": 3,
        "lineage": "0b6c4e0a-1111-2222-3333-444455556666",
        "outputs": {},
        "resources": [resource],
    }
    state.update(fields)
    return state


def nested_instance() -> dict[str, Any]:
    return {
        "schema_version": 0,
        "attributes": {
            "id": "i-1",
            "identities": [{"private_key": "key-0"}, {"private_key": "key-1"}],
            "triggers": {"secret": "s3cr3t", "plain": "visible"},
        },
        "sensitive_attributes": [
            [get_attr("identities"), index(1), get_attr("private_key")],
            [get_attr("triggers"), index("secret")],
        ],
    }


# Metadata, resources and outputs of the reference files


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            V3, (3, "0.11.1", 8, "0f5b2ff9-6ff5-8e9e-1f81-aa3ce9a483eb"), id="v3"
        ),
        pytest.param(
            V4_CBD, (4, "0.12.0", 0, "f2968801-fa14-41ab-a044-224f3a4adf04"), id="cbd"
        ),
        pytest.param(
            V4_ATTRIBUTE,
            (4, "0.14.0", 1, "d7a6880b-6875-288f-13a9-696a65c73036"),
            id="sensitive-attribute",
        ),
        pytest.param(
            V4_OUTPUTS,
            (4, "1.1.0", 8, "fa0debfe-854c-b885-a355-bbb09fa86dde"),
            id="sensitive-outputs",
        ),
    ],
)
def test_read_state_returns_metadata(name: str, expected: tuple[Any, ...]) -> None:
    state = read_state(load(name))

    actual = (
        state.format_version,
        state.terraform_version,
        state.serial,
        state.lineage,
    )

    assert actual == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            V3,
            [
                ("null_resource.bar", None, 2),
                ("null_resource.baz", None, 1),
                ("module.child.null_resource.foo", "module.child", 1),
            ],
            id="v3",
        ),
        pytest.param(
            V4_CBD,
            [("module.modA.null_resource.resource", "module.modA", 1)],
            id="cbd",
        ),
        pytest.param(
            V4_ATTRIBUTE, [("test_instance.test", None, 1)], id="sensitive-attribute"
        ),
        pytest.param(
            V4_OUTPUTS,
            [
                ("null_resource.bar", None, 1),
                ("null_resource.baz", None, 3),
                ("null_resource.foo", None, 1),
                ("module.foo.null_resource.aliased", "module.foo", 1),
                ("module.foo.null_resource.foo", "module.foo", 1),
            ],
            id="sensitive-outputs",
        ),
    ],
)
def test_read_state_lists_resources(
    name: str, expected: list[tuple[str, str | None, int]]
) -> None:
    state = read_state(load(name))

    actual = [(r.address, r.module, r.instance_count) for r in state.resources]

    assert actual == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(V3, ("results",), id="v3"),
        pytest.param(V4_CBD, ("numbers",), id="cbd"),
        pytest.param(V4_ATTRIBUTE, (), id="sensitive-attribute"),
        pytest.param(
            V4_OUTPUTS,
            (
                "foo",
                "interpolated",
                "interpolated_deep",
                "list",
                "map",
                "referenced",
                "referenced_deep",
                "string",
            ),
            id="sensitive-outputs",
        ),
    ],
)
def test_read_state_lists_root_output_names(
    name: str, expected: tuple[str, ...]
) -> None:
    assert read_state(load(name)).output_names == expected


def test_read_state_lists_sensitive_output_names() -> None:
    assert read_state(load(V4_OUTPUTS)).sensitive_output_names == ("foo",)


def test_read_state_counts_resources() -> None:
    assert read_state(load(V4_OUTPUTS)).resource_count == 5


def test_read_state_keeps_v4_resource_details() -> None:
    expected = TerraformResource(
        address="module.modA.null_resource.resource",
        mode="managed",
        type="null_resource",
        name="resource",
        provider='provider["registry.terraform.io/-/null"]',
        module="module.modA",
        instance_count=1,
    )

    assert read_state(load(V4_CBD)).resources == (expected,)


def test_read_state_keeps_v3_provider() -> None:
    providers = {r.provider for r in read_state(load(V3)).resources}

    assert providers == {"provider.null"}


def test_read_state_addresses_v4_data_source() -> None:
    state = v4_state(
        resources=[
            {
                "module": "module.net",
                "mode": "data",
                "type": "aws_ami",
                "name": "ubuntu",
                "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                "instances": [{"schema_version": 0, "attributes": {"id": "ami-1"}}],
            }
        ]
    )

    resource = read_state(state).resources[0]

    assert (resource.address, resource.mode) == (
        "module.net.data.aws_ami.ubuntu",
        "data",
    )


def test_read_state_addresses_v3_data_source_in_nested_module() -> None:
    state = {
        "version": 3,
        "serial": 1,
        "modules": [
            {
                "path": ["root", "a", "b"],
                "resources": {
                    "data.aws_ami.ubuntu": {"type": "aws_ami", "primary": {"id": "x"}}
                },
            }
        ],
    }

    resource = read_state(state).resources[0]

    assert (resource.address, resource.module, resource.mode) == (
        "module.a.module.b.data.aws_ami.ubuntu",
        "module.a.module.b",
        "data",
    )


def test_read_state_does_not_count_deposed_objects() -> None:
    state = v4_state(
        {"schema_version": 0, "attributes": {"id": "new"}},
        {"schema_version": 0, "deposed": "00000001", "attributes": {"id": "old"}},
    )

    assert read_state(state).resources[0].instance_count == 1


def test_read_state_does_not_count_v3_entry_without_primary_object() -> None:
    state = v3_state(resources={"aws_instance.web": {"primary": None}})

    assert read_state(state).resources[0].instance_count == 0


def test_read_state_reads_missing_serial_as_none() -> None:
    assert read_state({"version": 3}).serial is None


def test_read_state_reads_empty_strings_as_none() -> None:
    state = read_state(v4_state(terraform_version="", lineage=""))

    assert (state.terraform_version, state.lineage) == (None, None)


# Loading


def test_load_state_keeps_v3_integer_beyond_int64_exact() -> None:
    assert load(V3)["backend"]["hash"] == BIG_HASH


def test_load_state_parses_text() -> None:
    text = (DATA / V4_CBD).read_text()

    assert load_state(text)["lineage"] == "f2968801-fa14-41ab-a044-224f3a4adf04"


def test_load_state_unwraps_double_encoded_json() -> None:
    raw = json.dumps((DATA / V3).read_text()).encode()

    assert load_state(raw)["backend"]["hash"] == BIG_HASH


def test_load_state_skips_byte_order_mark() -> None:
    text = "\ufeff" + (DATA / V4_CBD).read_text()

    assert load_state(text)["serial"] == 0


def test_load_state_returns_dict_unchanged() -> None:
    state = v4_state()

    assert load_state(state) is state


def test_load_state_copies_other_mappings_to_dict() -> None:
    state = v4_state()

    assert load_state(MappingProxyType(state)) == state


# Redaction


def test_redact_state_hides_sensitive_output() -> None:
    redacted, _ = redact_state(load(V4_OUTPUTS))

    assert redacted["outputs"]["foo"]["value"] == REDACTED


def test_redact_state_keeps_plain_output() -> None:
    redacted, _ = redact_state(load(V4_OUTPUTS))

    assert redacted["outputs"]["string"]["value"] == "foo"


def test_redact_state_counts_sensitive_output() -> None:
    _, count = redact_state(load(V4_OUTPUTS))

    assert count == 1


def test_redact_state_hides_sensitive_attribute() -> None:
    redacted, count = redact_state(load(V4_ATTRIBUTE))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    assert (attributes, count) == ({"id": "621124146446964903", "ami": REDACTED}, 1)


def test_redact_state_leaves_no_secret_in_serialised_copy() -> None:
    redacted, _ = redact_state(load(V4_ATTRIBUTE))

    assert '"abc"' not in json.dumps(redacted)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, id=name.removesuffix(".tfstate"))
        for name in (V3, V4_CBD, V4_ATTRIBUTE, V4_OUTPUTS)
    ],
)
def test_redact_state_does_not_change_input(name: str) -> None:
    state = load(name)
    before = copy.deepcopy(state)

    redact_state(state)

    assert state == before


def test_redact_state_returns_independent_copy() -> None:
    state = load(V4_OUTPUTS)
    redacted, _ = redact_state(state)

    redacted["resources"][0]["instances"][0]["attributes"]["triggers"]["x"] = "y"

    assert "x" not in state["resources"][0]["instances"][0]["attributes"]["triggers"]


def test_redact_state_keeps_integer_beyond_int64_exact() -> None:
    redacted, _ = redact_state(load(V3))

    assert redacted["backend"]["hash"] == BIG_HASH


def test_redact_state_hides_sensitive_output_of_v3_child_module() -> None:
    state = load(V3)
    state["modules"][1]["outputs"]["test"]["sensitive"] = True

    redacted, count = redact_state(state)

    assert (redacted["modules"][1]["outputs"]["test"]["value"], count) == (
        REDACTED,
        1,
    )


def test_redact_state_follows_nested_paths() -> None:
    redacted, count = redact_state(v4_state(nested_instance()))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    expected = {
        "id": "i-1",
        "identities": [{"private_key": "key-0"}, {"private_key": REDACTED}],
        "triggers": {"secret": REDACTED, "plain": "visible"},
    }
    assert (attributes, count) == (expected, 2)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param([get_attr("missing")], id="missing-attribute"),
        pytest.param([get_attr("missing"), get_attr("x")], id="missing-parent"),
        pytest.param([index(True)], id="boolean-index"),
        pytest.param(
            [get_attr("identities"), {"type": "index", "value": 0.5}], id="fraction"
        ),
        pytest.param([get_attr("identities"), index(5)], id="index-out-of-range"),
        pytest.param([get_attr("identities"), index(-1)], id="negative-index"),
        pytest.param([get_attr("id"), get_attr("deeper")], id="through-a-string"),
        pytest.param([get_attr("triggers"), index(0)], id="number-into-object"),
        pytest.param([{"type": "splat", "value": "x"}], id="unknown-step"),
    ],
)
def test_redact_state_ignores_path_that_does_not_resolve(
    path: list[dict[str, Any]],
) -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = [path]

    redacted, count = redact_state(v4_state(instance))

    assert (redacted, count) == (v4_state(instance), 0)


def test_redact_state_ignores_path_that_is_not_a_list() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = [7, None]

    _, count = redact_state(v4_state(instance))

    assert count == 0


def test_redact_state_skips_legacy_flat_attributes() -> None:
    instance = {"attributes_flat": {"password": "pw"}, "sensitive_attributes": []}

    redacted, count = redact_state(v4_state(instance))

    flat = redacted["resources"][0]["instances"][0]["attributes_flat"]
    assert (flat, count) == ({"password": "pw"}, 0)


def test_redact_state_accepts_state_without_outputs_or_resources() -> None:
    state = {"version": 4, "serial": 1}

    assert redact_state(state) == (state, 0)


def test_redact_state_copies_read_only_mappings() -> None:
    state = v4_state(nested_instance())
    frozen = MappingProxyType({**state, "resources": tuple(state["resources"])})

    redacted, count = redact_state(frozen)

    assert (redacted["resources"][0]["name"], count) == ("one", 2)


def test_redact_state_counts_repeated_path_once() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = [[get_attr("id")], [get_attr("id")]]

    _, count = redact_state(v4_state(instance))

    assert count == 1


def test_redact_state_counts_path_inside_hidden_value_once() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = [
        [get_attr("triggers"), index("secret")],
        [get_attr("triggers")],
    ]

    redacted, count = redact_state(v4_state(instance))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    assert (attributes["triggers"], count) == (REDACTED, 1)


def test_redact_state_hides_values_marked_in_sensitive_values_mirror() -> None:
    instance = nested_instance()
    del instance["sensitive_attributes"]
    instance["sensitive_values"] = {
        "identities": [{"private_key": True}, {}],
        "triggers": {"plain": True, "secret": False},
    }

    redacted, count = redact_state(v4_state(instance))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    expected = (
        [{"private_key": REDACTED}, {"private_key": "key-1"}],
        {"secret": "s3cr3t", "plain": REDACTED},
        2,
    )
    assert (attributes["identities"], attributes["triggers"], count) == expected


def test_redact_state_accepts_mirror_as_sensitive_attributes() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = {"id": True}

    redacted, count = redact_state(v4_state(instance))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    assert (attributes["id"], count) == (REDACTED, 1)


def test_redact_state_accepts_bare_attribute_names() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = ["id", ["identities", 0, "private_key"]]

    redacted, count = redact_state(v4_state(instance))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    actual = (attributes["id"], attributes["identities"][0]["private_key"], count)
    assert actual == (REDACTED, REDACTED, 2)


def test_redact_state_hides_every_attribute_for_empty_path() -> None:
    instance = nested_instance()
    instance["sensitive_attributes"] = [[], [get_attr("id")]]

    redacted, count = redact_state(v4_state(instance))

    attributes = redacted["resources"][0]["instances"][0]["attributes"]
    expected = {"id": REDACTED, "identities": REDACTED, "triggers": REDACTED}
    assert (attributes, count) == (expected, 3)


def test_redact_state_accepts_number_index_written_as_float() -> None:
    instance = nested_instance()
    step = {"type": "index", "value": {"value": 1.0, "type": "number"}}
    instance["sensitive_attributes"] = [[get_attr("identities"), step]]

    redacted, _ = redact_state(v4_state(instance))

    identities = redacted["resources"][0]["instances"][0]["attributes"]["identities"]
    assert identities[1] == REDACTED


@pytest.mark.slow
def test_redact_state_handles_large_state() -> None:
    instances = [
        {
            "index_key": position,
            "schema_version": 0,
            "attributes": {"id": str(position), "password": "pw", "blob": "x" * 2000},
            "sensitive_attributes": [[get_attr("password")]],
        }
        for position in range(10_000)
    ]
    raw = json.dumps(v4_state(*instances)).encode()

    _, count = redact_state(load_state(raw))

    assert count == 10_000


# Wrong shapes


def with_resource(**fields: Any) -> dict[str, Any]:
    state = v4_state({"schema_version": 0, "attributes": {}})
    state["resources"][0].update(fields)
    return state


def v3_state(**module_fields: Any) -> dict[str, Any]:
    module = {"path": ["root"], "outputs": {}, "resources": {}}
    module.update(module_fields)
    return {"version": 3, "serial": 1, "modules": [module]}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param(b"<html>502</html>", "not valid JSON", id="not-json"),
        pytest.param(b'{"version": "\xff"}', "not UTF-8 text", id="not-utf8"),
        pytest.param(
            b'{"serial": ' + b"9" * 5000 + b"}", "could not be parsed", id="huge-int"
        ),
        pytest.param("[1, 2]", "must be a JSON object, got a list", id="json-list"),
        pytest.param(
            json.dumps("not json"), "not valid JSON", id="double-encoded-text"
        ),
        pytest.param(
            json.dumps("[]"), "must be a JSON object, got a list", id="double-list"
        ),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(42, "must be JSON text, bytes or a mapping", id="wrong-type"),
    ],
)
def test_load_state_rejects_input_that_is_not_a_state_object(
    raw: Any, match: str
) -> None:
    with pytest.raises(StateFormatError, match=match):
        load_state(raw)


@pytest.mark.parametrize(
    ("state", "match"),
    [
        pytest.param([], "must be a JSON object", id="not-an-object"),
        pytest.param({"serial": 1}, "no 'version' field", id="no-version"),
        pytest.param({"version": "4"}, "must be an integer", id="version-string"),
        pytest.param({"version": True}, "must be an integer", id="version-bool"),
        pytest.param({"version": 1}, "format 1 is too old", id="version-1"),
        pytest.param({"version": 2}, "format 2 is too old", id="version-2"),
        pytest.param({"version": 5}, "format 5 is unknown", id="version-5"),
        pytest.param(
            v4_state(resources={"a": {}}), "'resources' must be a list", id="resources"
        ),
        pytest.param(
            v4_state(resources=["x"]), r"resources\[0\] must be a JSON", id="resource"
        ),
        pytest.param(with_resource(mode="weird"), "mode 'weird'", id="mode"),
        pytest.param(with_resource(type=""), "'type' must be a non-empty", id="type"),
        pytest.param(with_resource(name=None), "'name' must be a non-empty", id="name"),
        pytest.param(
            with_resource(instances={}), "'instances' must be a list", id="instances"
        ),
        pytest.param(
            with_resource(instances=[7]), r"instances\[0\] must be", id="instance"
        ),
        pytest.param(with_resource(module=3), "'module' must be a string", id="module"),
        pytest.param(
            v4_state(outputs=[]), "'outputs' must be a JSON object", id="outputs"
        ),
        pytest.param(
            v4_state(outputs={"o": "v"}), "outputs 'o' must be a JSON", id="output"
        ),
        pytest.param(
            v4_state(outputs={"o": {"value": 1, "sensitive": "yes"}}),
            "'sensitive' must be true or false",
            id="output-sensitive",
        ),
        pytest.param(v4_state(serial=-1), "'serial' must be a whole", id="serial"),
        pytest.param(
            v4_state(terraform_version=1.1),
            "'terraform_version' must be a string",
            id="terraform-version",
        ),
        pytest.param(
            {"version": 3, "modules": {}}, "'modules' must be a list", id="v3-modules"
        ),
        pytest.param(v3_state(path=["child"]), "starting with 'root'", id="v3-path"),
        pytest.param(
            v3_state(resources={"aws_instance": {}}), "not 'TYPE.NAME'", id="v3-key"
        ),
        pytest.param(
            v3_state(resources={"aws_instance.a.b": {}}),
            "not 'TYPE.NAME'",
            id="v3-key-index",
        ),
        pytest.param(
            v3_state(resources={"aws_instance.a": []}),
            "must be a JSON object",
            id="v3-resource",
        ),
        pytest.param(
            v3_state(outputs={"o": {"sensitive": 1}}),
            "'sensitive' must be true or false",
            id="v3-output",
        ),
    ],
)
def test_read_state_rejects_wrong_shape(state: Any, match: str) -> None:
    with pytest.raises(StateFormatError, match=match):
        read_state(state)


def test_redact_state_rejects_wrong_shape() -> None:
    with pytest.raises(StateFormatError, match="format 2 is too old"):
        redact_state({"version": 2, "modules": []})


def test_state_format_error_is_upstream_data_error() -> None:
    assert issubclass(StateFormatError, UpstreamDataError)


def test_state_format_error_does_not_echo_long_values() -> None:
    secret = "s" * 100

    with pytest.raises(StateFormatError) as caught:
        read_state(with_resource(mode=secret))

    assert secret not in str(caught.value)
