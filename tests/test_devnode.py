"""Tests of the devnode, served by uvicorn on 127.0.0.1 and driven with httpx."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import ServedApp
from vxcache.devnode import DevnodeConfig, Faults, create_app

TOKEN = "test-token"
ANCHOR = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
LIST = "/api/v3/sessions/list"
SHOW = "/api/v2/tenant/sessions/show"
PULL = "/api/v2/tenant/sessions/pull"
APPLY = "/api/v2/tenant/sessions/apply"
DELETE = "/api/v2/tenant/sessions/delete"
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def small_config(**changes: Any) -> DevnodeConfig:
    values: dict[str, Any] = {
        "sessions": 300,
        "window": 50,
        "seed": 5,
        "token": TOKEN,
        "transition_seconds": 0.2,
        "anchor_at": ANCHOR,
    }
    values.update(changes)
    return DevnodeConfig(**values)


@dataclass
class RunningDevnode:
    """A devnode served in a background thread, with an httpx client on it."""

    url: str
    app: Any
    client: httpx.Client

    @property
    def state(self) -> Any:
        return self.app.state.devnode

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, f"/_admin/{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def list_sessions(self) -> list[dict[str, Any]]:
        response = self.client.get(LIST)
        response.raise_for_status()
        return response.json()

    def show(self, session_id: str) -> httpx.Response:
        return self.client.post(SHOW, json={"session_id": session_id})


def wait_until(check: Callable[[], Any], *, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(0.02)


@pytest.fixture
def devnode_server() -> Iterator[Callable[..., RunningDevnode]]:
    """Start devnodes with uvicorn on free loopback ports; stop them afterwards."""
    started: list[tuple[ServedApp, httpx.Client]] = []

    def start(config: DevnodeConfig | None = None) -> RunningDevnode:
        app = create_app(config or small_config())
        served = ServedApp(app).start()
        headers = {"Authorization": f"Bearer {app.state.devnode.config.token}"}
        client = httpx.Client(base_url=served.url, headers=headers, timeout=10.0)
        started.append((served, client))
        return RunningDevnode(url=served.url, app=app, client=client)

    yield start

    for served, client in started:
        client.close()
        served.stop()


@pytest.fixture
def node(devnode_server: Callable[..., RunningDevnode]) -> RunningDevnode:
    return devnode_server()


def first_with(node: RunningDevnode, **wanted: Any) -> dict[str, Any]:
    for record in node.list_sessions():
        if all(record.get(key) == value for key, value in wanted.items()):
            return record
    raise AssertionError(f"no session in the window with {wanted}")


# Authentication


def test_list_without_token_is_401_not_authenticated(node: RunningDevnode) -> None:
    response = httpx.get(node.url + LIST)

    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


def test_list_with_wrong_token_is_401_invalid_token(node: RunningDevnode) -> None:
    response = httpx.get(node.url + LIST, headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


# List


def test_list_returns_the_window_newest_first(node: RunningDevnode) -> None:
    node.admin("PUT", "settings", json={"time_style": "z"})

    records = node.list_sessions()

    starts = [record["started_at"] for record in records if "started_at" in record]
    assert len(records) == 50
    assert starts == sorted(starts, reverse=True)


def test_same_seed_gives_the_same_list() -> None:
    first = create_app(small_config()).state.devnode.store.list_body()

    second = create_app(small_config()).state.devnode.store.list_body()
    other = create_app(small_config(seed=6)).state.devnode.store.list_body()

    assert first == second
    assert first != other


def test_list_can_be_wrapped(node: RunningDevnode) -> None:
    node.admin("PUT", "settings", json={"list_shape": "wrapped", "window": 7})

    body = node.client.get(LIST).json()

    assert body["count"] == 7
    assert len(body["sessions"]) == 7


def test_mixed_timestamps_name_the_same_instants_as_plain_ones(
    node: RunningDevnode,
) -> None:
    mixed = node.list_sessions()
    node.admin("PUT", "settings", json={"time_style": "z"})
    plain = node.list_sessions()

    def instant(text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    pairs = [
        (one["started_at"], two["started_at"])
        for one, two in zip(mixed, plain, strict=True)
        if "started_at" in one
    ]
    assert all(instant(a) == instant(b) for a, b in pairs)
    assert all(b.endswith("Z") and len(b) == 27 for _, b in pairs)
    assert len({a[19:].lstrip(".0123456789") for a, _ in pairs}) >= 4


def test_running_sessions_show_ended_at_in_several_empty_forms(
    devnode_server: Callable[..., RunningDevnode],
) -> None:
    node = devnode_server(small_config(sessions=3000, window=3000))

    records = node.list_sessions()

    running = [r for r in records if r["status"] in ("running", "queued", "applying")]
    forms = {repr(record.get("ended_at", "absent")) for record in running}
    assert forms <= {"'absent'", "None", "''", "'0001-01-01T00:00:00Z'"}
    assert len(forms) >= 3


# Show


def test_show_adds_fields_the_sdk_does_not_know(node: RunningDevnode) -> None:
    record = node.list_sessions()[0]

    shown = node.show(record["session_id"]).json()

    assert shown["session_id"] == record["session_id"]
    assert shown["node"].startswith("node-")
    assert {"plan_id", "tags", "exit_code"} <= shown.keys()


def test_show_unknown_session_is_404_with_detail(node: RunningDevnode) -> None:
    response = node.show("ses_x")

    assert response.status_code == 404
    assert response.json() == {"detail": "Session ses_x not found"}


def test_show_without_session_id_is_422_with_a_detail_list(
    node: RunningDevnode,
) -> None:
    response = node.client.post(SHOW, json={})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "session_id"]


# Pull


def pull(node: RunningDevnode, session_id: str) -> dict[str, Any]:
    response = node.client.post(PULL, json={"session_id": session_id})
    response.raise_for_status()
    return response.json()


def test_pull_sends_a_version_4_state_with_secrets(node: RunningDevnode) -> None:
    record = first_with(node, status="succeeded")

    state = pull(node, record["session_id"])["terraform_state"]

    assert state["version"] == 4
    assert state["terraform_version"].startswith("1.9.")
    assert state["outputs"]["db_password"]["sensitive"] is True
    assert any(
        resource.get("module") == "module.network" for resource in state["resources"]
    )
    instances = [i for resource in state["resources"] for i in resource["instances"]]
    assert {"type": "get_attr", "value": "password"} in [
        path[0] for instance in instances for path in instance["sensitive_attributes"]
    ]
    assert {0, "web-a"} <= {instance.get("index_key") for instance in instances}


def test_pull_bundle_is_a_base64_tarball(node: RunningDevnode) -> None:
    record = first_with(node, status="succeeded")

    artifacts = pull(node, record["session_id"])["artifacts"]

    by_name = {artifact["name"]: artifact for artifact in artifacts}
    assert list(by_name) == ["plan.txt", "main.tf", "outputs.json", "bundle.tar.gz"]
    raw = gzip.decompress(base64.b64decode(by_name["bundle.tar.gz"]["content"]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        names = archive.getnames()
    assert "main.tf" in names


def test_pull_is_stable_until_the_status_changes(node: RunningDevnode) -> None:
    session_id = first_with(node, status="succeeded")["session_id"]

    first = pull(node, session_id)["terraform_state"]
    second = pull(node, session_id)["terraform_state"]
    node.admin("PATCH", f"sessions/{session_id}", json={"status": "failed"})
    third = pull(node, session_id)["terraform_state"]

    assert first == second
    assert third["serial"] != first["serial"]
    assert third["lineage"] == first["lineage"]


def test_pull_can_send_the_state_as_a_string(node: RunningDevnode) -> None:
    session_id = first_with(node, status="succeeded")["session_id"]
    node.admin("PUT", "settings", json={"state_as_string": True})

    state = pull(node, session_id)["terraform_state"]

    assert isinstance(state, str)
    assert state.startswith('{"version":4')


def test_pull_state_grows_to_state_bytes(node: RunningDevnode) -> None:
    session_id = first_with(node, status="succeeded")["session_id"]
    node.admin(
        "PUT", "settings", json={"state_bytes": 3_000_000, "state_as_string": True}
    )

    state = pull(node, session_id)["terraform_state"]

    assert len(state) >= 3_000_000


def test_pull_unknown_session_is_404(node: RunningDevnode) -> None:
    response = node.client.post(PULL, json={"session_id": "ses_x"})

    assert response.status_code == 404


# Apply and delete


def settled_status(node: RunningDevnode, session_id: str) -> str | None:
    status = node.show(session_id).json()["status"]
    return None if status in ("running", "deleting") else status


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_apply_runs_a_planned_session_to_its_outcome(
    node: RunningDevnode, outcome: str
) -> None:
    session_id = node.admin("POST", "sessions", json={"status": "planned"})[
        "session_id"
    ]
    node.admin("PUT", "settings", json={"next_apply_outcome": outcome})

    answer = node.client.post(APPLY, json={"session_id": session_id}).json()

    assert answer == {
        "session_id": session_id,
        "status": "running",
        "message": "apply started",
    }
    assert wait_until(lambda: settled_status(node, session_id)) == outcome
    assert node.show(session_id).json()["ended_at"]


def test_apply_a_session_that_is_not_planned_is_409(node: RunningDevnode) -> None:
    session_id = first_with(node, status="succeeded")["session_id"]

    response = node.client.post(APPLY, json={"session_id": session_id})

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Session {session_id} is succeeded; only planned sessions can be applied"
    }


def test_delete_a_protected_session_needs_force(node: RunningDevnode) -> None:
    session_id = first_with(node, protected=True)["session_id"]

    refused = node.client.post(DELETE, json={"session_id": session_id})
    forced = node.client.post(DELETE, json={"session_id": session_id, "force": True})

    assert refused.status_code == 409
    assert refused.json() == {
        "detail": f"Session {session_id} is protected; confirm with force=true"
    }
    assert forced.json() == {"session_id": session_id, "status": "deleting"}
    assert wait_until(lambda: settled_status(node, session_id)) == "deleted"


def test_delete_twice_is_409(node: RunningDevnode) -> None:
    session_id = node.admin("POST", "sessions", json={"status": "failed"})["session_id"]
    node.client.post(DELETE, json={"session_id": session_id})

    again = node.client.post(DELETE, json={"session_id": session_id})

    assert again.status_code == 409
    assert again.json() == {"detail": f"Session {session_id} is already deleting"}


# Admin


def test_requests_are_counted_per_route(node: RunningDevnode) -> None:
    node.list_sessions()
    node.list_sessions()
    node.show("ses_x")
    httpx.get(node.url + LIST)

    counts = node.admin("GET", "requests")

    assert counts == {"list": 3, "show": 1, "pull": 0, "apply": 0, "delete": 0}


def test_reset_clears_faults_and_counters(node: RunningDevnode) -> None:
    node.admin("PUT", "faults", json={"throttle_count": -1})
    node.client.get(LIST)

    node.admin("POST", "reset")

    assert node.admin("GET", "requests")["list"] == 0
    assert node.admin("GET", "faults") == Faults().__dict__
    assert node.client.get(LIST).status_code == 200


def test_faults_with_unknown_fields_are_refused(node: RunningDevnode) -> None:
    response = node.client.put("/_admin/faults", json={"thrtotle_count": 1})

    assert response.status_code == 422


def test_admin_can_script_a_session(node: RunningDevnode) -> None:
    created = node.admin(
        "POST", "sessions", json={"status": "running", "ended_at": "", "owner": "qa"}
    )
    session_id = created["session_id"]

    node.admin("PATCH", f"sessions/{session_id}", json={"status": "cancelled"})
    listed = node.list_sessions()[0]

    assert listed["session_id"] == session_id
    assert listed["status"] == "cancelled"
    assert listed["ended_at"] == ""
    assert listed["owner"] == "qa"


def test_purged_sessions_are_gone(node: RunningDevnode) -> None:
    session_id = node.list_sessions()[0]["session_id"]

    node.admin("POST", f"sessions/{session_id}/purge")

    assert node.show(session_id).status_code == 404
    assert session_id not in {record["session_id"] for record in node.list_sessions()}


# Faults


def set_faults(node: RunningDevnode, **faults: Any) -> None:
    node.admin("PUT", "faults", json=faults)


def test_throttle_answers_429_with_retry_after(node: RunningDevnode) -> None:
    set_faults(node, throttle_count=2, retry_after="3")

    statuses = [node.client.get(LIST) for _ in range(3)]

    assert [response.status_code for response in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "3"
    assert statuses[0].json()["detail"]


def test_unavailable_answers_503(node: RunningDevnode) -> None:
    set_faults(node, unavailable_count=1, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")

    response = node.client.get(LIST)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"


def test_bad_gateway_answers_an_html_page(node: RunningDevnode) -> None:
    set_faults(node, html_502_count=1)

    response = node.client.get(LIST)

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


def test_error_rate_one_answers_500(node: RunningDevnode) -> None:
    set_faults(node, error_rate=1.0)

    response = node.client.get(LIST)

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}


def test_truncated_body_raises_a_protocol_error(node: RunningDevnode) -> None:
    set_faults(node, truncate_count=1)

    with pytest.raises(httpx.RemoteProtocolError):
        node.client.get(LIST)
    assert node.client.get(LIST).status_code == 200


def test_empty_body_is_a_200_with_nothing(node: RunningDevnode) -> None:
    set_faults(node, empty_body_count=1)

    response = node.client.get(LIST)

    assert response.status_code == 200
    assert response.content == b""


def test_garbage_is_json_of_the_wrong_shape(node: RunningDevnode) -> None:
    set_faults(node, garbage_count=2)

    listed = node.client.get(LIST).json()
    shown = node.show("ses_x").json()

    assert listed == {"unexpected": True}
    assert isinstance(shown, str)


def test_drop_after_write_acts_but_the_client_sees_an_error(
    node: RunningDevnode,
) -> None:
    session_id = node.admin("POST", "sessions", json={"status": "planned"})[
        "session_id"
    ]
    set_faults(node, drop_after_write_count=1)

    with pytest.raises(DROPPED):
        node.client.post(APPLY, json={"session_id": session_id})

    assert node.show(session_id).json()["status"] in ("running", "succeeded", "failed")
    assert node.admin("GET", "requests")["apply"] == 1


def test_down_drops_every_node_request(node: RunningDevnode) -> None:
    set_faults(node, down=True)

    with pytest.raises(DROPPED):
        node.client.get(LIST)
    with pytest.raises(DROPPED):
        node.show("ses_x")
    assert node.admin("GET", "requests")["list"] == 1


def test_faults_limited_to_routes_spare_the_others(node: RunningDevnode) -> None:
    set_faults(node, throttle_count=-1, routes=["show"])

    listed = node.client.get(LIST)
    shown = node.show("ses_x")

    assert listed.status_code == 200
    assert shown.status_code == 429


def test_faults_set_at_start_apply(
    devnode_server: Callable[..., RunningDevnode],
) -> None:
    node = devnode_server(small_config(faults=Faults(unavailable_count=1)))

    first = node.client.get(LIST)
    second = node.client.get(LIST)

    assert [first.status_code, second.status_code] == [503, 200]


# Time and scale


def test_new_sessions_arrive_at_the_rate(node: RunningDevnode) -> None:
    before = {record["session_id"] for record in node.list_sessions()}

    node.admin("PUT", "settings", json={"rate_per_minute": 6000})

    newest = wait_until(lambda: node.list_sessions()[0]["session_id"] not in before)
    assert newest
    assert len(node.list_sessions()) == 50


def test_a_hundred_thousand_sessions_are_generated() -> None:
    app = create_app(DevnodeConfig(sessions=100_000, window=100_000))

    assert len(app.state.devnode.store) == 100_000
