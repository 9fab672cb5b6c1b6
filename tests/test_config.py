"""Settings: precedence, units, and errors that name file, line and key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vxcache._units import parse_duration, parse_size
from vxcache.config import load_settings, starter_config
from vxcache.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        (" 7 ", 7.0),
    ],
    ids=["seconds", "minutes", "hours", "millis", "days", "bare"],
)
def test_duration_units_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-1s", "", "1y"], ids=str)
def test_bad_duration_is_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_size_units_parse_to_bytes():
    assert [parse_size("64MiB"), parse_size("500kB"), parse_size(10)] == [
        64 * 1024**2,
        500_000,
        10,
    ]


def test_environment_overrides_file_and_options_override_environment(tmp_path):
    config = write(
        tmp_path / "c.toml", '[node]\nurl = "http://file:1"\n[sync]\ninterval = "1m"\n'
    )
    environ = {"VXCACHE_NODE_URL": "http://env:2", "VXCACHE_TOKEN": "secret-from-env"}

    from_env = load_settings(config, environ=environ)
    from_option = load_settings(
        config, environ=environ, overrides={"node": {"url": "http://option:3"}}
    )

    assert (from_env.node.url, from_env.sync.interval) == ("http://env:2", 60.0)
    assert from_option.node.url == "http://option:3"
    assert from_env.node.token.get_secret_value() == "secret-from-env"


def test_toml_syntax_error_names_file_line_and_key(tmp_path):
    config = write(tmp_path / "bad.toml", "[sync]\npull = true\ninterval = 5m\n")

    with pytest.raises(ConfigError, match=r"bad\.toml line 3, key 'interval'"):
        load_settings(config, environ={})


def test_wrong_type_names_key_and_expectation(tmp_path):
    config = write(tmp_path / "c.toml", '[sync]\npull_concurrency = "many"\n')

    with pytest.raises(ConfigError, match=r"'sync\.pull_concurrency'.*integer"):
        load_settings(config, environ={})


def test_bad_duration_value_names_key(tmp_path):
    config = write(tmp_path / "c.toml", '[sync]\ninterval = "soon"\n')

    with pytest.raises(ConfigError, match=r"'sync\.interval'.*duration"):
        load_settings(config, environ={})


def test_a_section_written_as_a_value_names_the_table_it_should_be(tmp_path):
    config = write(tmp_path / "c.toml", 'node = "http://127.0.0.1:8700"\n')

    with pytest.raises(ConfigError, match=r"c\.toml: 'node' must be a table") as caught:
        load_settings(config, environ={"VXCACHE_TOKEN": "t0ken"})

    assert "8700" not in str(caught.value)  # the value may be a misplaced token


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:port", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://:8700", "has no host name"),
    ],
    ids=["port-range", "port-text", "ipv6", "no-host"],
)
def test_a_node_url_that_cannot_be_reached_is_refused(url, reason):
    with pytest.raises(ConfigError, match=rf"'node\.url'.*{reason}"):
        load_settings(overrides={"node": {"url": url}}, environ={})


def test_a_time_limit_of_nothing_is_refused():
    with pytest.raises(ConfigError, match=r"'query\.time_limit'.*greater than 0"):
        load_settings(overrides={"query": {"time_limit": "0s"}}, environ={})


def test_a_link_to_the_cache_names_the_same_file(tmp_path):
    real = tmp_path / "data" / "cache.db"
    real.parent.mkdir()
    real.touch()
    (tmp_path / "link.db").symlink_to(real)

    settings = load_settings(
        overrides={"cache": {"path": str(tmp_path / "link.db")}}, environ={}
    )

    # The sync lock and the replica sit beside this path: one for both names.
    assert settings.cache.db_path == real.resolve()


def test_unknown_key_is_a_warning_naming_it(tmp_path, caplog):
    config = write(tmp_path / "c.toml", '[sync]\nintervall = "5m"\n[extra]\nx = 1\n')

    with caplog.at_level(logging.WARNING):
        settings = load_settings(config, environ={})

    assert settings.sync.interval == 300.0
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "'sync.intervall'" in messages
    assert "'extra'" in messages


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_token_never_shows_in_repr():
    settings = load_settings(overrides={"node": {"token": "tok-3141592"}}, environ={})

    assert "tok-3141592" not in repr(settings)
    assert "tok-3141592" not in str(settings.model_dump())


def test_default_cache_path_is_in_the_user_data_folder(tmp_path):
    settings = load_settings(environ={})

    assert settings.cache.db_path == tmp_path / "xdg-data" / "vxcache" / "cache.db"


def test_example_config_documents_every_key_and_loads(tmp_path):
    example = Path(__file__).resolve().parent.parent / "config.example.toml"

    settings = load_settings(example, environ={})

    assert settings == load_settings(environ={}).model_copy(
        update={"config_path": example}
    )


def test_starter_config_fills_node_url_and_cache_path(tmp_path):
    text = starter_config(node_url="http://n:9", db_path=tmp_path / "x.db")
    config = write(tmp_path / "c.toml", text)

    settings = load_settings(config, environ={})

    assert (settings.node.url, settings.cache.db_path) == (
        "http://n:9",
        tmp_path / "x.db",
    )
