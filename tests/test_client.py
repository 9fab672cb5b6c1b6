"""The node client against the served devnode, plus unit tests of its tolerance."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import ssl
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import TOKEN, Devnode, free_port, make_settings

from vxcache.client import Artifact, NodeClient, PullResult
from vxcache.client._messages import extract_detail, parse_retry_after
from vxcache.client._node import tls_verification
from vxcache.client._payload import ShapeError, parse_pull_answer, parse_session_list
from vxcache.config import NodeSettings
from vxcache.errors import (
    AuthRejectedError,
    ConfigError,
    RateLimitedError,
    SessionNotFoundError,
    UpstreamDataError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)

ClientFactory = Callable[..., NodeClient]


@pytest.fixture
def waits() -> list[float]:
    """Every wait the client asked for between retries, instead of sleeping."""
    return []


@pytest.fixture
def make_client(db_path: Path, waits: list[float]) -> Iterator[ClientFactory]:
    """Build clients for a devnode (or a URL) with node settings overridden."""
    clients: list[NodeClient] = []

    def build(
        node: Devnode | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **node_settings: Any,
    ) -> NodeClient:
        # make_settings(node, db_path, node={...}) collides with its own `node`
        # parameter, so the node section is validated again with the overrides.
        base = make_settings(node, db_path).node.model_dump()
        options = {**base, "max_attempts": 3, **node_settings}
        settings = NodeSettings.model_validate(options)
        client = NodeClient(settings, transport=transport, sleep=waits.append)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def set_faults(node: Devnode, **faults: Any) -> None:
    node.admin("POST", "reset")
    node.admin("PUT", "faults", json=faults)


def create_session(node: Devnode, **record: Any) -> str:
    created = node.admin("POST", "sessions", json=record)
    return str(created["session_id"])


def mock_client(
    make_client: ClientFactory, handler: Callable[[httpx.Request], httpx.Response]
) -> NodeClient:
    return make_client(
        transport=httpx.MockTransport(handler),
        url="http://node.test",
        token=TOKEN,
    )


# Reads against a healthy devnode


def test_only_an_https_node_loads_the_default_certificates() -> None:
    plain = tls_verification("http://127.0.0.1:8080")

    assert tls_verification("HTTPS://node.example") is True
    assert isinstance(plain, ssl.SSLContext)
    # Should TLS ever happen on a plain node's client, it verifies and fails.
    assert (plain.verify_mode, plain.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert plain.cert_store_stats()["x509_ca"] == 0


def test_list_returns_the_window_of_recent_sessions(devnode, make_client):
    client = make_client(devnode)

    records = client.list_sessions()

    assert len(records) == 100
    assert len({record.session_id for record in records}) == 100


def test_list_accepts_an_answer_wrapped_in_an_object(devnode, make_client):
    devnode.admin("PUT", "settings", json={"list_shape": "wrapped"})
    client = make_client(devnode)

    records = client.list_sessions()

    assert len(records) == 100


def test_list_reads_mixed_timestamp_styles_as_the_same_utc_instants(
    devnode, make_client
):
    client = make_client(devnode)
    devnode.admin("PUT", "settings", json={"time_style": "mixed"})
    mixed = {record.session_id: record for record in client.list_sessions()}
    devnode.admin("PUT", "settings", json={"time_style": "z"})

    plain = {record.session_id: record for record in client.list_sessions()}

    assert mixed.keys() == plain.keys()
    for session_id, record in mixed.items():
        assert record.started_at == plain[session_id].started_at
        if record.status == plain[session_id].status:
            # A running session may settle between the two lists.
            assert record.ended_at == plain[session_id].ended_at
        for moment in (record.started_at, record.ended_at):
            assert moment is None or moment.utcoffset() == timedelta(0)


def test_list_and_show_keep_unknown_fields(devnode, make_client):
    session_id = create_session(
        devnode, status="succeeded", cost_center={"id": 7, "tags": ["a"]}
    )
    client = make_client(devnode)

    listed = {record.session_id: record for record in client.list_sessions()}
    shown = client.show_session(session_id)

    assert listed[session_id].extra["cost_center"] == {"id": 7, "tags": ["a"]}
    assert shown.extra["cost_center"] == {"id": 7, "tags": ["a"]}


def test_show_returns_the_session_with_its_extra_fields(devnode, make_client):
    client = make_client(devnode)
    first = client.list_sessions()[0]

    shown = client.show_session(first.session_id)

    assert shown.session_id == first.session_id
    assert shown.status == first.status
    assert shown.extra


def test_show_of_an_unknown_session_raises_session_not_found(devnode, make_client):
    client = make_client(devnode)

    with pytest.raises(SessionNotFoundError, match=r"ses_missing.*not known") as caught:
        client.show_session("ses_missing")

    assert caught.value.status == 404
    assert caught.value.detail == "Session ses_missing not found"


def test_pull_of_an_unknown_session_raises_session_not_found(devnode, make_client):
    client = make_client(devnode)

    with pytest.raises(SessionNotFoundError):
        client.pull_session("ses_missing")


# Authentication and reachability


def test_a_wrong_token_raises_auth_rejected_naming_the_fix(devnode, make_client):
    client = make_client(devnode, token="not-the-token")

    with pytest.raises(AuthRejectedError, match=r"VXCACHE_TOKEN") as caught:
        client.list_sessions()

    assert caught.value.status == 401
    assert "Invalid token" in str(caught.value)
    assert "not-the-token" not in str(caught.value)


def test_no_token_sends_no_auth_header_and_says_so(devnode, make_client):
    client = make_client(devnode, token="")

    with pytest.raises(AuthRejectedError, match=r"without a token"):
        client.list_sessions()


def test_an_unreachable_port_raises_unavailable_after_the_retry_budget(db_path, waits):
    url = f"http://127.0.0.1:{free_port()}"
    settings = NodeSettings(url=url, max_attempts=3, retry_max_wait=0.05)

    with (
        NodeClient(settings, sleep=waits.append) as client,
        pytest.raises(
            UpstreamUnavailableError,
            match=f"node at {url} is unreachable: connection refused",
        ),
    ):
        client.list_sessions()

    assert len(waits) == 2


def test_check_reachable_is_none_for_a_healthy_node(devnode, make_client):
    assert make_client(devnode).check_reachable() is None


def test_check_reachable_names_a_refused_connection(make_client):
    client = make_client(url=f"http://127.0.0.1:{free_port()}")

    assert client.check_reachable() == "unreachable: connection refused"


def test_check_reachable_names_a_rejected_token(devnode, make_client):
    client = make_client(devnode, token="wrong")

    assert client.check_reachable() == "token rejected (401)"


def test_check_reachable_tries_once_without_retrying(devnode, make_client, waits):
    set_faults(devnode, throttle_count=-1)
    client = make_client(devnode)

    assert client.check_reachable() == "throttled (429)"
    assert devnode.requests()["list"] == 1
    assert waits == []


def test_check_reachable_waits_no_longer_than_the_connect_timeout(devnode, make_client):
    set_faults(devnode, latency_seconds=2.0, routes=["list"])
    client = make_client(devnode, connect_timeout=0.3, read_timeout=30)
    started = time.perf_counter()

    problem = client.check_reachable()

    # It names the wait it had (a loaded machine may not even connect in time).
    assert problem in (
        "unreachable: no answer within 0.3s",
        "unreachable: no connection within 0.3s",
    )
    assert time.perf_counter() - started < 1.5


# Faults on reads: each reaches the caller as its own error


def test_throttling_is_retried_until_the_budget_then_rate_limited(
    devnode, make_client, waits
):
    set_faults(devnode, throttle_count=-1, retry_after="5")
    client = make_client(devnode, max_attempts=3, retry_max_wait="0.2s")

    with pytest.raises(RateLimitedError, match=r"429 \(3 attempts\)") as caught:
        client.list_sessions()

    assert devnode.requests()["list"] == 3
    assert waits == [0.2, 0.2]
    assert caught.value.retry_after == 5.0


def test_retry_after_shorter_than_the_cap_is_honoured(devnode, make_client, waits):
    set_faults(devnode, throttle_count=2, retry_after="0.05")
    client = make_client(devnode, max_attempts=4, retry_max_wait="1s")

    records = client.list_sessions()

    assert len(records) == 100
    assert waits == [0.05, 0.05]
    assert devnode.requests()["list"] == 3


def test_retry_after_as_an_http_date_is_honoured_and_capped(
    devnode, make_client, waits
):
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    set_faults(devnode, throttle_count=-1, retry_after=later)
    client = make_client(devnode, max_attempts=2, retry_max_wait="0.1s")

    with pytest.raises(RateLimitedError) as caught:
        client.list_sessions()

    assert waits == [0.1]
    assert caught.value.retry_after is not None
    assert 3500 < caught.value.retry_after <= 3600


def test_retries_are_logged_as_warnings_without_secrets(devnode, make_client, caplog):
    set_faults(devnode, throttle_count=1, retry_after="0.01")
    client = make_client(devnode)

    with caplog.at_level(logging.WARNING, logger="vxcache"):
        client.list_sessions()

    assert [record.getMessage() for record in caplog.records] == [
        "node request retried route=list attempt=2 wait=0.01 reason=429"
    ]


def test_an_html_502_page_reaches_the_message_after_retries(devnode, make_client):
    set_faults(devnode, html_502_count=-1)
    client = make_client(devnode, max_attempts=3)

    with pytest.raises(
        UpstreamServerError, match=r"502 \(3 attempts\): 502 Bad Gateway"
    ):
        client.list_sessions()

    assert devnode.requests()["list"] == 3


def test_a_503_without_retry_after_is_retried_then_a_server_error(devnode, make_client):
    session_id = create_session(devnode, status="succeeded")
    set_faults(devnode, unavailable_count=-1, retry_after="")
    client = make_client(devnode, max_attempts=2)

    with pytest.raises(
        UpstreamServerError, match=r"503 \(2 attempts\): Service Unavailable"
    ):
        client.show_session(session_id)

    assert devnode.requests()["show"] == 2


def test_a_truncated_body_is_retried_then_a_data_error(devnode, make_client):
    set_faults(devnode, truncate_count=-1)
    client = make_client(devnode, max_attempts=3)

    with pytest.raises(UpstreamDataError, match=r"cut off its answer to /api/v3"):
        client.list_sessions()

    assert devnode.requests()["list"] == 3


def test_a_truncated_body_once_is_cured_by_a_retry(devnode, make_client, waits):
    set_faults(devnode, truncate_count=1)
    client = make_client(devnode)

    records = client.list_sessions()

    assert len(records) == 100
    assert len(waits) == 1


def test_an_empty_body_raises_a_data_error(devnode, make_client):
    set_faults(devnode, empty_body_count=1)
    client = make_client(devnode)

    with pytest.raises(
        UpstreamDataError, match=r"empty answer to /api/v3/sessions/list"
    ):
        client.list_sessions()


@pytest.mark.parametrize("route", ["list", "show", "pull"])
def test_an_answer_of_the_wrong_shape_raises_a_data_error(devnode, make_client, route):
    session_id = create_session(devnode, status="succeeded")
    set_faults(devnode, garbage_count=1, routes=[route])
    client = make_client(devnode)
    calls = {
        "list": client.list_sessions,
        "show": lambda: client.show_session(session_id),
        "pull": lambda: client.pull_session(session_id),
    }

    with pytest.raises(UpstreamDataError, match=r"unexpected shape"):
        calls[route]()

    assert devnode.requests()[route] == 1


def test_a_500_is_not_retried_and_keeps_the_nodes_words(devnode, make_client, waits):
    set_faults(devnode, error_rate=1.0)
    client = make_client(devnode)

    with pytest.raises(
        UpstreamServerError, match=r"500: Internal Server Error"
    ) as caught:
        client.list_sessions()

    assert caught.value.status == 500
    assert devnode.requests()["list"] == 1
    assert waits == []


def test_a_slow_node_raises_unavailable_naming_the_read_timeout(devnode, make_client):
    set_faults(devnode, latency_seconds=0.5)
    client = make_client(devnode, read_timeout="0.1s", max_attempts=1)

    with pytest.raises(UpstreamUnavailableError, match=r"read_timeout"):
        client.list_sessions()


def test_a_dropped_connection_on_a_read_is_retried(devnode, make_client):
    set_faults(devnode, down=True)
    client = make_client(devnode, max_attempts=2)

    with pytest.raises(UpstreamUnavailableError, match=r"closed without an answer"):
        client.list_sessions()

    assert devnode.requests()["list"] == 2


# Writes: sent exactly once


@pytest.mark.parametrize("route", ["apply", "delete"])
def test_a_write_whose_connection_drops_is_sent_once_and_outcome_unknown(
    devnode, make_client, route
):
    session_id = create_session(devnode, status="planned")
    set_faults(devnode, drop_after_write_count=1, routes=[route])
    client = make_client(devnode)
    write = client.apply_session if route == "apply" else client.delete_session

    with pytest.raises(
        WriteOutcomeUnknownError, match=r"the node may have acted"
    ) as caught:
        write(session_id)

    assert devnode.requests()[route] == 1
    assert f"vxcache sessions show {session_id} --refresh" in str(caught.value)
    assert client.show_session(session_id).status in ("running", "deleting")


@pytest.mark.parametrize("route", ["apply", "delete"])
def test_a_write_answered_503_is_not_retried(devnode, make_client, waits, route):
    session_id = create_session(devnode, status="planned")
    set_faults(devnode, unavailable_count=-1, retry_after="", routes=[route])
    client = make_client(devnode, max_attempts=4)
    write = client.apply_session if route == "apply" else client.delete_session

    with pytest.raises(UpstreamServerError, match=r"503"):
        write(session_id)

    assert devnode.requests()[route] == 1
    assert waits == []


def test_a_write_answered_429_is_rate_limited_without_retry(devnode, make_client):
    session_id = create_session(devnode, status="planned")
    set_faults(devnode, throttle_count=-1, retry_after="7", routes=["apply"])
    client = make_client(devnode)

    with pytest.raises(RateLimitedError) as caught:
        client.apply_session(session_id)

    assert caught.value.retry_after == 7.0
    assert devnode.requests()["apply"] == 1


def test_a_write_through_a_failing_gateway_is_outcome_unknown(devnode, make_client):
    session_id = create_session(devnode, status="planned")
    set_faults(devnode, html_502_count=-1, routes=["delete"])
    client = make_client(devnode)

    with pytest.raises(WriteOutcomeUnknownError, match=r"gateway answered 502"):
        client.delete_session(session_id)

    assert devnode.requests()["delete"] == 1


def test_a_write_that_times_out_is_sent_once_and_outcome_unknown(devnode, make_client):
    session_id = create_session(devnode, status="planned")
    set_faults(devnode, latency_seconds=0.4, routes=["apply"])
    client = make_client(devnode, read_timeout="0.1s")

    with pytest.raises(WriteOutcomeUnknownError, match=r"no answer within 0.1s"):
        client.apply_session(session_id)

    assert devnode.requests()["apply"] == 1


def test_apply_returns_the_nodes_answer(devnode, make_client):
    session_id = create_session(devnode, status="planned")
    client = make_client(devnode)

    answer = client.apply_session(session_id)

    assert answer == {
        "session_id": session_id,
        "status": "running",
        "message": "apply started",
    }


def test_delete_sends_force_and_returns_the_answer(devnode, make_client):
    session_id = create_session(devnode, status="succeeded", protected=True)
    client = make_client(devnode)

    answer = client.delete_session(session_id, force=True)

    assert answer == {"session_id": session_id, "status": "deleting"}


def test_a_refused_write_keeps_the_nodes_words(devnode, make_client):
    session_id = create_session(devnode, status="succeeded", protected=True)
    client = make_client(devnode)

    with pytest.raises(UpstreamRejectedError, match=r"409: .*confirm with force=true"):
        client.delete_session(session_id)


def test_a_write_to_an_unreachable_node_is_unavailable_not_unknown(make_client):
    client = make_client(url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(UpstreamUnavailableError, match=r"connection refused"):
        client.apply_session("ses_1")


def test_a_write_to_an_unknown_session_raises_session_not_found(devnode, make_client):
    client = make_client(devnode)

    with pytest.raises(SessionNotFoundError):
        client.delete_session("ses_missing")


# Pulls


def test_pull_returns_state_artifacts_and_the_body_digest(devnode, make_client):
    session_id = create_session(devnode, status="succeeded")
    client = make_client(devnode)

    pulled = client.pull_session(session_id)

    assert pulled.session_id == session_id
    assert pulled.state is not None
    assert "resources" in pulled.state
    assert [artifact.name for artifact in pulled.artifacts] == [
        "plan.txt",
        "main.tf",
        "outputs.json",
        "bundle.tar.gz",
    ]
    assert pulled.body["session_id"] == session_id
    assert len(pulled.sha256) == 64
    assert pulled.size_bytes == len(orjson.dumps(pulled.body))


def test_pull_decodes_a_base64_artifact_to_its_bytes(devnode, make_client):
    session_id = create_session(devnode, status="succeeded")
    client = make_client(devnode)

    pulled = client.pull_session(session_id)

    artifacts = {artifact.name: artifact for artifact in pulled.artifacts}
    bundle = artifacts["bundle.tar.gz"]
    assert bundle.encoding == "base64"
    assert bundle.content_type == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle.content))) as tar:
        member = tar.extractfile("plan.txt")
        assert member is not None
        assert member.read() == artifacts["plan.txt"].content


def test_pull_parses_a_state_sent_as_a_json_string(devnode, make_client):
    session_id = create_session(devnode, status="succeeded")
    client = make_client(devnode)
    as_object = client.pull_session(session_id).state
    devnode.admin("PUT", "settings", json={"state_as_string": True})

    pulled = client.pull_session(session_id)

    assert isinstance(pulled.body["terraform_state"], str)
    assert pulled.state == as_object


def test_pull_of_a_multi_megabyte_state_works(devnode_factory, make_client):
    node = devnode_factory(state_bytes=3_000_000)
    session_id = create_session(node, status="succeeded")
    client = make_client(node)

    pulled = client.pull_session(session_id)

    assert pulled.size_bytes > 3_000_000
    assert pulled.state is not None


def test_pull_past_max_pull_bytes_raises_a_data_error(devnode_factory, make_client):
    node = devnode_factory(state_bytes=2_000_000)
    session_id = create_session(node, status="succeeded")
    client = make_client(node, max_pull_bytes="1MiB")

    with pytest.raises(UpstreamDataError, match=r"more than 1MiB.*node.max_pull_bytes"):
        client.pull_session(session_id)

    assert node.requests()["pull"] == 1


def test_an_endless_body_stops_at_max_pull_bytes(make_client):
    def endless() -> Iterator[bytes]:
        yield b'{"artifacts": ["'
        while True:
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    client = mock_client(make_client, handler)

    with pytest.raises(UpstreamDataError, match=r"the body kept coming"):
        client.pull_session("ses_1")


def test_pull_keeps_integers_past_64_bits_exact(make_client):
    big = 2**70 + 1
    body = b'{"terraform_state": {"version": 3, "serial": %d}}' % big

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    pulled = mock_client(make_client, handler).pull_session("ses_1")

    assert pulled.state == {"version": 3, "serial": big}
    assert pulled.sha256 == hashlib.sha256(body).hexdigest()


def test_pull_with_invalid_base64_raises_a_data_error(make_client):
    body = {"artifacts": [{"name": "a.bin", "encoding": "base64", "content": "%%%"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    client = mock_client(make_client, handler)

    with pytest.raises(UpstreamDataError, match=r"'a.bin' has invalid base64"):
        client.pull_session("ses_1")


# The wire: requests as the contract says


def test_requests_carry_the_auth_header_and_json_bodies(make_client):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = make_client(
        transport=httpx.MockTransport(handler),
        url="http://node.test/prefix",
        token="s3cret",
        auth_header="X-Api-Key",
        auth_scheme="",
    )

    client.delete_session("ses_1", force=True)

    assert seen[0].url == "http://node.test/prefix/api/v2/tenant/sessions/delete"
    assert seen[0].headers["X-Api-Key"] == "s3cret"
    assert "authorization" not in seen[0].headers
    assert orjson.loads(seen[0].content) == {"session_id": "ses_1", "force": True}


def test_an_empty_write_answer_reads_as_an_empty_object(make_client):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    client = mock_client(make_client, handler)

    assert client.delete_session("ses_1") == {}


def test_a_fastapi_validation_error_lists_each_problem(make_client):
    detail = [
        {"loc": ["body", "session_id"], "msg": "Field required", "type": "missing"},
        {"loc": ["body", "force"], "msg": "Input should be a boolean", "type": "bool"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": detail})

    client = mock_client(make_client, handler)

    with pytest.raises(UpstreamRejectedError) as caught:
        client.show_session("ses_1")

    assert caught.value.detail == (
        "body.session_id: Field required; body.force: Input should be a boolean"
    )


def test_a_token_that_cannot_travel_in_a_header_is_a_config_error():
    settings = NodeSettings(token="s3cr3t\nvalue")

    with pytest.raises(ConfigError, match=r"node.token") as caught:
        NodeClient(settings)

    assert "s3cr3t" not in str(caught.value)


def test_whitespace_around_the_token_is_not_sent(make_client):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = make_client(
        transport=httpx.MockTransport(handler),
        url="http://node.test",
        token=" s3cret\n",
    )

    client.list_sessions()

    assert seen[0].headers["Authorization"] == "Bearer s3cret"


def test_repr_shows_only_the_url(devnode, make_client):
    client = make_client(devnode)

    assert repr(client) == f"NodeClient(url={devnode.url!r})"


def test_repr_hides_user_info_in_the_url():
    settings = NodeSettings(url="http://user:pa55@node.test:8700/")

    with NodeClient(settings) as client:
        assert repr(client) == "NodeClient(url='http://node.test:8700')"


def test_the_token_appears_in_no_log_or_error(devnode_factory, make_client, caplog):
    other = devnode_factory(token="a-different-token")
    node = devnode_factory()
    client = make_client(node, max_attempts=2)
    rejected = make_client(other)
    messages: list[str] = []
    faults: list[dict[str, Any]] = [
        {"throttle_count": -1},
        {"html_502_count": -1},
        {"truncate_count": -1},
        {"empty_body_count": -1},
        {"garbage_count": -1},
        {"error_rate": 1.0},
        {"down": True},
    ]
    session_id = create_session(node, status="planned")

    with caplog.at_level(logging.DEBUG):
        for fault in faults:
            set_faults(node, **fault)
            for call in (
                client.list_sessions,
                lambda: client.pull_session(session_id),
                lambda: client.apply_session(session_id),
            ):
                messages.extend(_error_texts(call))
        set_faults(node, drop_after_write_count=1)
        messages.extend(_error_texts(lambda: client.delete_session(session_id)))
        messages.extend(_error_texts(rejected.list_sessions))
        messages.extend(_error_texts(lambda: client.show_session("ses_missing")))
        messages.append(str(rejected.check_reachable()))

    logged = [record.getMessage() for record in caplog.records]
    assert len(messages) > 20
    assert len(logged) > 20
    assert [text for text in messages + logged if TOKEN in text] == []


def _error_texts(call: Callable[[], object]) -> list[str]:
    try:
        call()
    except UpstreamError as exc:
        texts = [str(exc), repr(exc)]
        cause = exc.__cause__
        while cause is not None:
            texts.append(repr(cause))
            cause = cause.__cause__
        return texts
    return []


# Unit tests of the tolerant reading


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2024-05-01T12:30:45Z", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T14:30:45+02:00", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T07:30:45-05:00", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T12:30:45", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        (
            "2024-05-01T12:30:45.1Z",
            datetime(2024, 5, 1, 12, 30, 45, 100000, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.12Z",
            datetime(2024, 5, 1, 12, 30, 45, 120000, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.123+00:00",
            datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.1234Z",
            datetime(2024, 5, 1, 12, 30, 45, 123400, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.12345Z",
            datetime(2024, 5, 1, 12, 30, 45, 123450, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.123456",
            datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.1234567Z",
            datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.12345678Z",
            datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC),
        ),
        (
            "2024-05-01T12:30:45.123456789Z",
            datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC),
        ),
        (
            "2024-05-01T18:00:45.5+05:30",
            datetime(2024, 5, 1, 12, 30, 45, 500000, tzinfo=UTC),
        ),
        (None, None),
        ("", None),
        ("0001-01-01T00:00:00Z", None),
    ],
    ids=[
        "z",
        "plus-offset",
        "minus-offset",
        "no-zone",
        "1-digit",
        "2-digits",
        "3-digits",
        "4-digits",
        "5-digits",
        "6-digits-no-zone",
        "7-digits",
        "8-digits",
        "9-digits",
        "half-hour-offset",
        "null",
        "empty",
        "go-zero-time",
    ],
)
def test_every_timestamp_form_reads_as_aware_utc(wire, expected):
    item = {"session_id": "ses_1", "status": "succeeded", "ended_at": wire}

    [record] = parse_session_list([item]).records

    assert record.ended_at == expected
    assert record.ended_at is None or record.ended_at.tzinfo == UTC


def test_an_absent_timestamp_reads_as_none():
    [record] = parse_session_list(
        [{"session_id": "ses_1", "status": "running"}]
    ).records

    assert record.started_at is None
    assert record.ended_at is None


SESSION = {"session_id": "ses_1", "status": "succeeded"}


@pytest.mark.parametrize(
    "answer",
    [
        [SESSION],
        {"sessions": [SESSION], "count": 1},
        {"items": [SESSION], "next": None},
        {"data": [SESSION]},
        {"results": [SESSION], "total": 1},
        {"whatever": [SESSION], "count": 1},
        {"data": {"sessions": [SESSION], "page": 1}},
    ],
    ids=["bare", "sessions", "items", "data", "results", "single-list", "nested"],
)
def test_every_collection_shape_yields_the_sessions(answer):
    records = parse_session_list(answer).records

    assert [record.session_id for record in records] == ["ses_1"]


@pytest.mark.parametrize(
    "answer",
    [[], {"sessions": None, "count": 0}, {"sessions": []}],
    ids=["empty-array", "null-member", "empty-member"],
)
def test_an_empty_collection_yields_no_sessions(answer):
    assert len(parse_session_list(answer)) == 0


def test_a_bare_null_is_not_an_empty_list():
    # Taken for "no sessions", it would send every cached session to show.
    with pytest.raises(ShapeError, match="expected a list of sessions, got null"):
        parse_session_list(None)


def test_items_with_a_known_digest_are_counted_but_not_parsed():
    first = parse_session_list([SESSION, {"session_id": "ses_2", "status": "ok"}])
    known = {record.session_id: record.wire_digest for record in first.records}
    changed = {"session_id": "ses_2", "status": "failed"}

    again = parse_session_list([SESSION, changed], known=known)

    assert again.unchanged == ["ses_1"]
    assert [record.status for record in again.records] == ["failed"]
    assert again.records[0].wire_digest not in (None, known["ses_2"])


def test_a_reordered_item_is_parsed_again_and_reads_the_same():
    [record] = parse_session_list([SESSION]).records
    reordered = {"status": "succeeded", "session_id": "ses_1"}

    again = parse_session_list([reordered], known={"ses_1": record.wire_digest})

    assert again.unchanged == []
    assert again.records[0].fingerprint == record.fingerprint


def test_a_known_id_with_another_digest_is_parsed_and_checked():
    bad = {"session_id": "ses_1", "status": 3}

    with pytest.raises(ValueError, match=r"index 0.*ses_1"):
        parse_session_list([bad], known={"ses_1": b"x" * 16})


def test_a_repeated_session_is_kept_once_and_reported():
    changed = {"session_id": "ses_1", "status": "failed"}

    listing = parse_session_list([SESSION, changed, SESSION])

    assert [record.status for record in listing.records] == ["succeeded"]
    assert listing.duplicates == ["ses_1", "ses_1"]


def test_an_integer_past_64_bits_gets_no_digest_and_is_always_parsed():
    item = {**SESSION, "build": 2**70}

    [record] = parse_session_list([item]).records

    assert record.wire_digest is None
    assert record.extra == {"build": 2**70}


def test_a_bad_item_names_its_index_and_session():
    items = [SESSION, {"session_id": "ses_2", "status": "ok", "hostname": 5}]

    with pytest.raises(ValueError, match=r"index 1.*ses_2.*hostname"):
        parse_session_list(items)


def test_a_list_with_a_bad_item_raises_a_data_error_naming_it(make_client):
    items = [SESSION, {"session_id": "ses_2", "status": 3}]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=items)

    client = mock_client(make_client, handler)

    with pytest.raises(UpstreamDataError, match=r"index 1: session ses_2"):
        client.list_sessions()


def test_a_show_answer_wrapped_in_an_object_is_unwrapped(make_client):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"session": {**SESSION, "note": "é"}})

    record = mock_client(make_client, handler).show_session("ses_1")

    assert record.extra == {"note": "é"}


@pytest.mark.parametrize(
    ("artifacts", "expected"),
    [
        (
            [{"name": "a.txt", "content": "hé"}],
            Artifact("a.txt", "hé".encode(), None, "text"),
        ),
        (
            [{"name": "b.bin", "content": "AAEC", "encoding": "b64"}],
            Artifact("b.bin", b"\x00\x01\x02", None, "base64"),
        ),
        (
            {"c.txt": "plain"},
            Artifact("c.txt", b"plain", None, "text"),
        ),
        (
            {"d.bin": {"content": "AAEC", "encoding": "base64", "content_type": "x/y"}},
            Artifact("d.bin", b"\x00\x01\x02", "x/y", "base64"),
        ),
        (
            [{"name": "e.txt", "content": "", "encoding": "text"}],
            Artifact("e.txt", b"", None, "text"),
        ),
    ],
    ids=["text", "b64", "mapping", "mapping-object", "empty"],
)
def test_every_artifact_form_decodes(artifacts, expected):
    pulled = parse_pull_answer(
        {"artifacts": artifacts}, session_id="ses_1", size_bytes=0, sha256=""
    )

    assert pulled.artifacts == (expected,)


@pytest.mark.parametrize(
    "body",
    [
        {"terraform_state": {"version": 4}},
        {"state": '{"version": 4}'},
        {"tfstate": orjson.dumps(orjson.dumps({"version": 4}).decode()).decode()},
    ],
    ids=["object", "string", "double-encoded"],
)
def test_every_state_form_parses(body):
    pulled = parse_pull_answer(body, session_id="ses_1", size_bytes=0, sha256="")

    assert pulled.state == {"version": 4}
    assert pulled.artifacts == ()


@pytest.mark.parametrize(
    "body",
    [{}, {"pull": {}}, {"data": {"artifacts": []}, "ok": True}],
    ids=["empty", "empty-wrapper", "wrapped"],
)
def test_a_pull_of_nothing_is_an_empty_pull(body):
    pulled = parse_pull_answer(body, session_id="ses_1", size_bytes=0, sha256="")

    assert (pulled.state, pulled.artifacts) == (None, ())


def test_a_pull_answer_holding_neither_state_nor_artifacts_is_refused():
    # Taken for an empty pull, it would stand in for the session's real one.
    with pytest.raises(ShapeError, match=r"got an object with keys ok, sessions"):
        parse_pull_answer(
            {"sessions": 5, "ok": True}, session_id="ses_1", size_bytes=0, sha256=""
        )


def test_a_pull_repr_hides_state_and_content():
    pulled = PullResult("ses_1", {"secret": "pw"}, {"secret": "pw"}, (), 0, "")
    artifact = Artifact("a", b"pw", None, "text")

    assert "pw" not in repr(pulled) + repr(artifact)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"detail": "Session x not found"}', "Session x not found"),
        (
            b'{"detail": [{"loc": ["body", "id"], "msg": "Field required"}]}',
            "body.id: Field required",
        ),
        (
            b"<html><head><title>502  Bad\n Gateway</title></head></html>",
            "502 Bad Gateway",
        ),
        (b"<html><body><h1>Service &amp; more</h1></body></html>", "Service & more"),
        (b"", "empty answer"),
        (b"upstream   connect error", "upstream connect error"),
        (b'{"error": {"message": "quota"}}', "quota"),
    ],
    ids=[
        "detail",
        "validation",
        "html-title",
        "html-heading",
        "empty",
        "text",
        "nested",
    ],
)
def test_the_nodes_own_words_are_extracted(body, expected):
    assert extract_detail(body) == expected


def test_a_cut_off_error_body_says_so():
    assert extract_detail(b'{"detail": "Sess', is_cut_off=True).endswith(
        "(answer cut off)"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        ("Thu, 01 Jan 2099 00:00:10 GMT", 10.0),
        ("Thu, 01 Jan 1998 00:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
    ids=["seconds", "fraction", "date", "past-date", "garbage", "nan", "absent"],
)
def test_retry_after_reads_seconds_and_http_dates(header, expected):
    now = datetime(2099, 1, 1, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == expected
