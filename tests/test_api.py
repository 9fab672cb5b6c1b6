"""The local HTTP API over a cache seeded by a real sync against the devnode."""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import hypothesis
import pytest
import schemathesis
from conftest import TOKEN, Devnode, DevnodeFactory, ServedApp, free_port, make_settings
from fastapi import FastAPI
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from vxcache.api import check_exposure, create_app
from vxcache.cli import cli
from vxcache.cli._app import run_cli
from vxcache.client import NodeClient
from vxcache.config import Settings
from vxcache.devnode import DevnodeConfig
from vxcache.devnode import create_app as create_node_app
from vxcache.errors import ConfigError
from vxcache.schedule import claim_schedule
from vxcache.store import Store
from vxcache.sync import run_sync

API_TOKEN = "test-api-token-81c4e0"
ROOT = Path(__file__).resolve().parent.parent
# Enough for schemathesis to try each route's edges; the whole run stays under 30 s.
EXAMPLES_PER_OPERATION = 25


@dataclass
class Seeded:
    """A devnode and the settings of a cache synced from it once."""

    node: Devnode
    settings: Settings


def seed_cache(settings: Settings) -> None:
    with Store.open(settings) as store, NodeClient(settings.node) as client:
        run_sync(store, client, settings)


def serve_api(settings: Settings) -> tuple[ServedApp, FastAPI]:
    app = create_app(settings)
    return ServedApp(app).start(), app


def wait_for(condition: Callable[[], bool], *, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


# -- fixtures: one seeded cache for the read-only tests of this module -------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    config = DevnodeConfig(
        sessions=300, window=100, seed=7, token=TOKEN, transition_seconds=0.3
    )
    node_app = create_node_app(config)
    node = Devnode(ServedApp(node_app).start(), config.token, node_app.state.devnode)
    settings = make_settings(node, tmp_path_factory.mktemp("api") / "cache.db")
    seed_cache(settings)
    yield Seeded(node, settings)
    node.stop()


@pytest.fixture(scope="module")
def api_app(seeded: Seeded) -> Iterator[FastAPI]:
    app = create_app(seeded.settings)
    yield app
    app.state.vxcache.close()


@pytest.fixture(scope="module")
def api(api_app: FastAPI) -> Iterator[httpx.Client]:
    served = ServedApp(api_app).start()
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client
    served.stop()


@pytest.fixture(scope="module")
def readonly_api(seeded: Seeded) -> Iterator[httpx.Client]:
    settings = make_settings(
        seeded.node, seeded.settings.cache.db_path, api={"allow_writes": False}
    )
    served, app = serve_api(settings)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client
    served.stop()
    app.state.vxcache.close()


@pytest.fixture(scope="module")
def guarded_api(seeded: Seeded) -> Iterator[httpx.Client]:
    settings = make_settings(
        seeded.node, seeded.settings.cache.db_path, api={"token": API_TOKEN}
    )
    served, app = serve_api(settings)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client
    served.stop()
    app.state.vxcache.close()


def listed_ids(settings: Settings) -> list[str]:
    with Store.open(settings) as store:
        return [session.session_id for session in store.recent_sessions(10_000)]


# -- the OpenAPI document and schemathesis ------------------------------------------


def test_openapi_document_lists_every_route(api: httpx.Client) -> None:
    response = api.get("/openapi.json")

    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert paths >= {
        "/api/v3/sessions/list",
        "/healthz",
        "/v1/status",
        "/v1/sync",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/history",
        "/v1/sessions/{session_id}/artifacts",
        "/v1/sessions/{session_id}/artifacts/{name}",
        "/v1/query",
        "/v1/reports",
        "/v1/reports/{name}",
        "/v1/sessions/{session_id}/apply",
        "/v1/sessions/{session_id}/delete",
    }


def test_schemathesis_finds_no_5xx(api_app: FastAPI) -> None:
    # The operations are driven one by one through `as_strategy`: the pytest
    # loader `schemathesis.pytest.from_fixture` (needed for a seeded app)
    # reads `Function._nodeid`, which pytest 9 no longer has.
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    calls = [0]

    for operation in operations:
        cases = hypothesis.strategies.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=cases)
        def call(case: Any) -> None:
            calls[0] += 1
            case.call_and_validate(checks=[not_a_server_error])

        call()

    assert len(operations) >= 15
    assert calls[0] >= len(operations) * 5


# -- the node's list, served from the cache ----------------------------------------


def test_node_client_reads_the_list_from_vxcache_while_the_node_is_down(
    devnode: Devnode, db_path: Path
) -> None:
    settings = make_settings(devnode, db_path, api={"token": API_TOKEN})
    seed_cache(settings)
    served, app = serve_api(settings)
    devnode.stop()
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Accept": "application/json"}

    try:
        response = httpx.get(f"{served.url}/api/v3/sessions/list", headers=headers)
    finally:
        served.stop()
        app.state.vxcache.close()

    assert response.status_code == 200
    assert [item["session_id"] for item in response.json()] == listed_ids(settings)
    assert response.headers["X-Vxcache-Synced-At"].endswith("Z")


def test_node_list_keeps_the_node_shape(seeded: Seeded, api: httpx.Client) -> None:
    node_list = httpx.get(
        f"{seeded.node.url}/api/v3/sessions/list",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()
    node_fields = {key for item in node_list for key in item}

    cached = api.get("/api/v3/sessions/list").json()

    assert isinstance(cached, list)
    assert {key for item in cached for key in item} >= node_fields
    assert all(
        item["started_at"].endswith("Z") for item in cached if item["started_at"]
    )


def test_node_list_reports_an_unreachable_node_in_headers(
    devnode: Devnode, db_path: Path
) -> None:
    settings = make_settings(devnode, db_path)
    seed_cache(settings)
    served, app = serve_api(settings)
    devnode.stop()

    try:
        assert httpx.post(f"{served.url}/v1/sync").status_code == 202
        wait_for(lambda: not app.state.vxcache.is_sync_running())
        response = httpx.get(f"{served.url}/api/v3/sessions/list")
    finally:
        served.stop()
        app.state.vxcache.close()

    assert response.status_code == 200
    assert response.headers["X-Vxcache-Node-Reachable"] == "false"
    assert len(response.json()) == len(listed_ids(settings))


def test_node_list_follows_the_cache_after_a_sync(
    devnode: Devnode, db_path: Path
) -> None:
    settings = make_settings(devnode, db_path, sync={"pull": False})
    seed_cache(settings)
    served, app = serve_api(settings)
    before = httpx.get(f"{served.url}/api/v3/sessions/list").json()
    created = devnode.admin("POST", "sessions", json={"status": "succeeded"})

    try:
        assert httpx.post(f"{served.url}/v1/sync").status_code == 202
        wait_for(lambda: not app.state.vxcache.is_sync_running())
        after = httpx.get(f"{served.url}/api/v3/sessions/list").json()
    finally:
        served.stop()
        app.state.vxcache.close()

    assert created["session_id"] not in {item["session_id"] for item in before}
    assert after[0]["session_id"] == created["session_id"]


# -- reads ---------------------------------------------------------------------------


def test_sessions_filter_and_page_like_the_cli(api: httpx.Client) -> None:
    everything = api.get("/v1/sessions", params={"limit": 1000}).json()["data"][
        "sessions"
    ]
    status = everything[0]["status"]

    page = api.get("/v1/sessions", params={"status": status, "limit": 2, "offset": 1})

    expected = [s["session_id"] for s in everything if s["status"] == status][1:3]
    assert [s["session_id"] for s in page.json()["data"]["sessions"]] == expected


def test_sessions_since_takes_a_timestamp_without_zone_as_utc(
    api: httpx.Client,
) -> None:
    everything = api.get("/v1/sessions", params={"limit": 1000}).json()["data"][
        "sessions"
    ]
    since = sorted(s["started_at"] for s in everything)[50]

    found = api.get("/v1/sessions", params={"since": since.rstrip("Z"), "limit": 1000})

    assert len(found.json()["data"]["sessions"]) == sum(
        1 for s in everything if s["started_at"] >= since
    )


def test_every_envelope_carries_freshness(api: httpx.Client) -> None:
    body = api.get("/v1/sessions", params={"limit": 1}).json()

    assert body["ok"] is True
    assert set(body["freshness"]) == {"synced_at", "age_seconds", "node_reachable"}
    assert body["freshness"]["node_reachable"] is True
    assert body["freshness"]["synced_at"].endswith("Z")


def test_session_history_and_artifacts_are_served(api: httpx.Client) -> None:
    session_id = api.get("/v1/sessions", params={"limit": 1}).json()["data"][
        "sessions"
    ][0]["session_id"]

    history = api.get(f"/v1/sessions/{session_id}/history").json()["data"]
    artifacts = api.get(f"/v1/sessions/{session_id}/artifacts").json()["data"]
    first = artifacts[0]
    content = api.get(f"/v1/sessions/{session_id}/artifacts/{first['name']}")

    assert history[0]["version"] == 1
    assert len(content.content) == first["size_bytes"]
    assert content.headers["content-type"].startswith(first["content_type"])
    assert content.headers["x-content-type-options"] == "nosniff"


def test_artifact_names_with_slashes_reach_the_route(api: httpx.Client) -> None:
    session_id = api.get("/v1/sessions", params={"limit": 1}).json()["data"][
        "sessions"
    ][0]["session_id"]

    response = api.get(f"/v1/sessions/{session_id}/artifacts/modules/net/main.tf")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "RecordNotFoundError"
    assert "modules/net/main.tf" in response.json()["error"]["message"]


def test_status_and_healthz(api: httpx.Client) -> None:
    status = api.get("/v1/status").json()["data"]
    health = api.get("/healthz")

    assert status["listed"] == 100
    assert status["last_attempt_outcome"] == "ok"
    assert health.json() == {"ok": True, "data": {"status": "ok"}}


# -- SQL and reports -----------------------------------------------------------------


def test_query_by_get_binds_query_string_parameters(api: httpx.Client) -> None:
    sql = "SELECT count(*) AS n FROM sessions WHERE presence = $presence"

    response = api.get("/v1/query", params={"sql": sql, "presence": "listed"})

    data = response.json()["data"]
    assert data["columns"] == ["n"]
    assert data["rows"] == [[100]]
    assert data["truncated"] is False


def test_query_by_post_takes_sql_and_params(api: httpx.Client) -> None:
    body = {"sql": "SELECT $n::INTEGER * 2 AS twice", "params": {"n": 21}}

    response = api.post("/v1/query", json=body)

    assert response.json()["data"]["rows"] == [[42]]


def test_query_over_the_row_cap_is_truncated(seeded: Seeded, db_path: Path) -> None:
    settings = make_settings(
        seeded.node, seeded.settings.cache.db_path, query={"row_cap": 7}
    )
    served, app = serve_api(settings)

    try:
        response = httpx.get(f"{served.url}/v1/query", params={"sql": "FROM sessions"})
    finally:
        served.stop()
        app.state.vxcache.close()

    data = response.json()["data"]
    assert (data["row_count"], data["truncated"]) == (7, True)


def test_query_as_csv_streams_every_row(api: httpx.Client) -> None:
    sql = "SELECT session_id, started_at FROM sessions ORDER BY session_id"

    with api.stream(
        "GET", "/v1/query", params={"sql": sql, "format": "csv"}
    ) as response:
        text = "".join(response.iter_text())

    rows = list(csv.reader(io.StringIO(text)))
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-vxcache-truncated"] == "false"
    assert rows[0] == ["session_id", "started_at"]
    assert len(rows) == 101
    assert rows[1][1].endswith("Z")


def test_query_values_json_cannot_carry_are_made_plain(api: httpx.Client) -> None:
    sql = (
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS huge, "
        "1.5::DECIMAL(3, 1) AS decimal, 'ab'::BLOB AS blob, INTERVAL 90 SECOND AS span, "
        "TIMESTAMP '2026-01-02 03:04:05' AS naive, [1, 2] AS list, {'x': 1} AS struct"
    )

    as_json = api.get("/v1/query", params={"sql": sql}).json()["data"]["rows"]
    as_csv = api.get("/v1/query", params={"sql": sql, "format": "csv"}).text

    assert as_json == [
        [
            "170141183460469231731687303715884105727",
            1.5,
            "6162",
            90.0,
            "2026-01-02T03:04:05Z",
            [1, 2],
            {"x": 1},
        ]
    ]
    assert as_csv.splitlines()[1] == (
        "170141183460469231731687303715884105727,1.5,6162,90.0,2026-01-02T03:04:05Z,"
        '"[1,2]","{""x"":1}"'
    )


def test_reports_list_and_run_with_query_string_parameters(api: httpx.Client) -> None:
    reports = api.get("/v1/reports").json()["data"]
    report = next(r for r in reports if r["params"])
    param = report["params"][0]

    response = api.get(
        f"/v1/reports/{report['name']}", params={param["name"]: param["default"]}
    )

    assert response.status_code == 200
    assert response.json()["data"]["columns"]


# -- errors: one envelope, the right status ------------------------------------------

UNKNOWN = "/v1/sessions/ses_000000000000"
COPY = {"sql": "COPY sessions TO 'x.csv'"}
FORCE = {"force": True}
NOT_BOOL = {"force": "yes"}
# One row per case reads as a table; the formatter would explode it. "ro" is the
# server with api.allow_writes = false.
# fmt: off
ERROR_CASES = [
    ("api", "GET",    UNKNOWN,                          None,     404, "RecordNotFoundError"),
    ("api", "GET",    f"{UNKNOWN}/history",             None,     404, "RecordNotFoundError"),
    ("api", "GET",    "/v1/query?sql=SELEC%201",        None,     400, "QueryError"),
    ("api", "GET",    "/v1/query?sql=DROP%20TABLE%20x", None,     400, "QueryError"),
    ("api", "POST",   "/v1/query",                      COPY,     400, "QueryError"),
    ("api", "GET",    "/v1/reports/no-such-report",     None,     404, "RecordNotFoundError"),
    ("api", "GET",    "/v1/reports/activity?x=1",       None,     400, "UsageError"),
    ("ro",  "POST",   f"{UNKNOWN}/apply",               None,     403, "WritesDisabledError"),
    ("ro",  "POST",   f"{UNKNOWN}/delete",              FORCE,    403, "WritesDisabledError"),
    ("api", "GET",    "/v1/sessions?limit=0",           None,     422, "ValidationError"),
    ("api", "POST",   f"{UNKNOWN}/delete",              NOT_BOOL, 422, "ValidationError"),
    ("api", "GET",    "/v1/query",                      None,     422, "ValidationError"),
    ("api", "GET",    "/v2/nothing-here",               None,     404, "NotFound"),
    ("api", "DELETE", "/v1/status",                     None,     405, "MethodNotAllowed"),
    ("api", "POST",   f"{UNKNOWN}/apply",               None,     404, "SessionNotFoundError"),
]
# fmt: on


@pytest.mark.parametrize(
    ("client_name", "method", "path", "body", "status", "error_type"),
    ERROR_CASES,
    ids=[f"{case[1]} {case[2]}->{case[4]}" for case in ERROR_CASES],
)
def test_errors_share_one_envelope(
    request: pytest.FixtureRequest,
    client_name: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    error_type: str,
) -> None:
    fixture = {"api": "api", "ro": "readonly_api"}[client_name]
    client: httpx.Client = request.getfixturevalue(fixture)

    response = client.request(method, path, json=body)

    payload = response.json()
    assert (response.status_code, payload["error"]["type"]) == (status, error_type)
    assert payload["ok"] is False
    assert payload["error"]["message"]
    assert isinstance(payload["error"]["details"], list)
    assert "freshness" in payload


def test_validation_lists_every_problem(api: httpx.Client) -> None:
    response = api.get(
        "/v1/sessions", params={"limit": 0, "offset": -1, "since": "soon"}
    )

    locations = {d["location"] for d in response.json()["error"]["details"]}
    assert locations == {"query.limit", "query.offset", "query.since"}


def test_unexpected_errors_answer_500_without_details(
    seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    served, app = serve_api(seeded.settings)

    def crash() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/v1/crash", crash)
    try:
        response = httpx.get(f"{served.url}/v1/crash")
    finally:
        served.stop()
        app.state.vxcache.close()

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalError"
    assert "secret" not in response.text
    assert any(
        record.exc_info
        for record in caplog.records
        if record.name == "vxcache.api._errors"
    )


# -- security ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
    ],
    ids=["missing", "wrong", "basic-scheme", "no-scheme"],
)
@pytest.mark.parametrize(
    "path", ["/v1/status", "/api/v3/sessions/list", "/openapi.json", "/v2/unknown"]
)
def test_token_is_required_everywhere_but_healthz(
    guarded_api: httpx.Client, headers: dict[str, str], path: str
) -> None:
    response = guarded_api.get(path, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "Unauthorized"
    assert "freshness" not in response.json()
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_right_token_opens_the_api(guarded_api: httpx.Client) -> None:
    response = guarded_api.get(
        "/v1/status", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )

    assert response.status_code == 200


def test_healthz_needs_no_token(guarded_api: httpx.Client) -> None:
    assert guarded_api.get("/healthz").json() == {"ok": True, "data": {"status": "ok"}}


def test_answers_never_contain_the_node_token(api: httpx.Client) -> None:
    texts = [
        api.get(path).text for path in ("/v1/status", "/openapi.json", "/v1/reports")
    ]

    assert not any(TOKEN in text for text in texts)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_non_loopback_is_refused_without_a_token(host: str, db_path: Path) -> None:
    settings = make_settings(None, db_path)

    with pytest.raises(ConfigError, match="without a token"):
        check_exposure(settings, host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_needs_no_token(host: str, db_path: Path) -> None:
    check_exposure(make_settings(None, db_path), host)


def test_non_loopback_is_allowed_with_a_token(db_path: Path) -> None:
    check_exposure(make_settings(None, db_path, api={"token": API_TOKEN}), "0.0.0.0")


def test_serve_refuses_a_public_address_in_one_line(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(cli, ["serve", "--db", str(db_path), "--host", "0.0.0.0"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "without a token" in err


def test_cors_is_off_unless_configured(api: httpx.Client, seeded: Seeded) -> None:
    origin = {"Origin": "http://example.test"}
    settings = make_settings(
        seeded.node,
        seeded.settings.cache.db_path,
        api={"cors_origins": ["http://example.test"]},
    )
    served, app = serve_api(settings)

    try:
        allowed = httpx.get(f"{served.url}/v1/status", headers=origin)
    finally:
        served.stop()
        app.state.vxcache.close()
    default = api.get("/v1/status", headers=origin)

    assert "access-control-allow-origin" not in default.headers
    assert allowed.headers["access-control-allow-origin"] == "http://example.test"


# -- syncs and concurrency -----------------------------------------------------------


def test_parallel_queries_see_no_errors_while_a_sync_runs(
    devnode: Devnode, db_path: Path
) -> None:
    settings = make_settings(devnode, db_path)
    seed_cache(settings)
    for number in range(40):
        devnode.admin(
            "POST",
            "sessions",
            json={"status": "succeeded", "hostname": f"new-{number}"},
        )
    devnode.admin("PUT", "faults", json={"latency_seconds": 0.03, "routes": ["pull"]})
    served, app = serve_api(settings)
    failures: list[str] = []
    answered = [0]
    lock = threading.Lock()

    def query_until_synced() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            while True:
                is_running = app.state.vxcache.is_sync_running()
                response = client.get(
                    "/v1/query",
                    params={
                        "sql": "SELECT status, count(*) AS n FROM sessions GROUP BY ALL"
                    },
                )
                with lock:
                    answered[0] += 1
                    if response.status_code != 200:
                        failures.append(response.text)
                if not is_running:
                    return

    try:
        started = httpx.post(f"{served.url}/v1/sync")
        second = httpx.post(f"{served.url}/v1/sync")
        threads = [threading.Thread(target=query_until_synced) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        listed = httpx.get(f"{served.url}/v1/status").json()["data"]["sessions"]
    finally:
        served.stop()
        app.state.vxcache.close()

    assert started.status_code == 202
    assert (second.status_code, second.json()["error"]["type"]) == (
        409,
        "CacheBusyError",
    )
    assert failures == []
    assert answered[0] >= 40
    assert listed == 140


def test_sync_route_refuses_offline(seeded: Seeded, db_path: Path) -> None:
    settings = make_settings(None, seeded.settings.cache.db_path)
    served, app = serve_api(settings)

    try:
        response = httpx.post(f"{served.url}/v1/sync")
    finally:
        served.stop()
        app.state.vxcache.close()

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "UpstreamUnavailableError"


# -- writes --------------------------------------------------------------------------


def test_delete_passes_through_with_force_and_is_audited(
    devnode_factory: DevnodeFactory, db_path: Path
) -> None:
    node = devnode_factory(transition_seconds=0.0)
    settings = make_settings(node, db_path)
    seed_cache(settings)
    served, app = serve_api(settings)
    session_id = listed_ids(settings)[0]

    try:
        response = httpx.post(
            f"{served.url}/v1/sessions/{session_id}/delete",
            json={"force": True},
            timeout=30,
        )
        writes = httpx.get(
            f"{served.url}/v1/query",
            params={"sql": "SELECT action, force, outcome FROM writes"},
        )
    finally:
        served.stop()
        app.state.vxcache.close()

    assert response.status_code == 200, response.text
    assert response.json()["data"]["outcome"] == "ok"
    assert writes.json()["data"]["rows"] == [["delete", True, "ok"]]
    assert node.requests()["delete"] == 1


# -- vxcache serve -------------------------------------------------------------------


def test_a_second_server_on_a_scheduled_cache_serves_without_a_scheduler(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vxcache.api")
    held = claim_schedule(settings)
    assert held is not None
    try:
        app = create_app(settings, schedule=True)
        served = ServedApp(app, lifespan="on").start()  # the scheduler starts there
        try:
            status = httpx.get(f"{served.url}/v1/status", timeout=10)
        finally:
            served.stop()
    finally:
        held.release()

    assert status.status_code == 200
    assert "another vxcache process already syncs" in caplog.text
    assert "scheduler started" not in caplog.text


def test_serve_help_says_one_worker() -> None:
    serve = cli.get_command(click.Context(cli), "serve")
    assert serve is not None
    help_text = serve.get_help(cli.make_context("vxcache", ["serve"]))

    assert "one uvicorn worker" in " ".join(help_text.split())


@pytest.mark.parametrize(
    ("signum", "exit_codes"),
    [(signal.SIGTERM, (0, -signal.SIGTERM)), (signal.SIGINT, (0, 130))],
    ids=["SIGTERM", "SIGINT"],
)
def test_serve_syncs_answers_and_stops_cleanly_on_signals(
    devnode: Devnode, db_path: Path, signum: int, exit_codes: tuple[int, ...]
) -> None:
    port = free_port()
    env = {**os.environ, "VXCACHE_TOKEN": devnode.token}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vxcache",
            "serve",
            "--port",
            str(port),
            "--db",
            str(db_path),
            "--node",
            devnode.url,
        ],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def synced() -> bool:
        try:
            status = httpx.get(f"{url}/v1/status", timeout=2).json()["data"]
        except httpx.HTTPError:
            return False
        return status["last_attempt_outcome"] == "ok"

    try:
        wait_for(synced, seconds=30)
        listed = httpx.get(f"{url}/api/v3/sessions/list").json()
    finally:
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)

    assert len(listed) == 100
    # uvicorn shuts down gracefully, then re-raises the signal so the exit
    # status says how the process ended (SIGINT becomes the CLI's 130).
    assert process.returncode in exit_codes
    assert err.index("scheduler stopping") < err.index("Application shutdown complete")
    assert TOKEN not in err
