"""The command line: help and docs for every command, exit codes, reads from the cache."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest
from conftest import free_port

from vxcache.cli import cli
from vxcache.cli._app import run_cli
from vxcache.cli._group import LazyGroup, load_all_commands
from vxcache.schedule import claim_schedule

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(
    encoding="utf-8"
)


def all_commands(
    group: click.Group, prefix: str = ""
) -> list[tuple[str, click.Command]]:
    """Every command as ``vxcache --help`` finds it, loading lazy ones."""
    context = click.Context(group)
    found = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"{prefix}{name} is listed but cannot be loaded"
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, prefix + name + " "))
    return found


def test_each_lazy_command_is_defined_in_the_module_its_group_names() -> None:
    load_all_commands()

    for group in (cli, *(c for c in cli.commands.values() if isinstance(c, LazyGroup))):
        assert isinstance(group, LazyGroup)
        defined = {
            name: command.callback.__module__
            for name, command in group.commands.items()
            if not isinstance(command, click.Group) and command.callback is not None
        }
        assert defined == {
            name: f"vxcache.cli.{module}" for name, module in group.modules.items()
        }


def test_a_query_loads_no_sqlalchemy_httpx_or_uvicorn(vx, db_path):
    vx("sync", "--no-pull")
    code = (
        "import sys\n"
        "from vxcache.cli import cli\n"
        "from vxcache.cli._app import run_cli\n"
        "status = run_cli(cli, ['--db', sys.argv[1], 'query', 'SELECT 1'])\n"
        "heavy = sorted({'sqlalchemy', 'httpx', 'uvicorn'} & set(sys.modules))\n"
        "print(status, heavy)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code, str(db_path)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.splitlines()[-1] == "0 []"


@pytest.mark.parametrize(("name", "command"), all_commands(cli), ids=lambda v: str(v))
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name, command):
    help_text = command.help or ""

    assert help_text.strip(), f"{name} has no help"
    if not isinstance(command, click.Group):
        assert "Example: vxcache" in help_text
    assert f"vxcache {name.split()[0]}" in README


@pytest.fixture
def vx(devnode, db_path, capsys, monkeypatch):
    """Run vxcache against the devnode; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("VXCACHE_NODE_URL", devnode.url)
    monkeypatch.setenv("VXCACHE_TOKEN", devnode.token)
    monkeypatch.setenv("VXCACHE_DB", str(db_path))

    def run(*args: str) -> tuple[int, str, str]:
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_init_writes_a_private_config_and_refuses_to_overwrite(vx, tmp_path):
    config = tmp_path / "config.toml"

    first = vx("init", "--config", str(config))
    second = vx("init", "--config", str(config))

    assert first[0] == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert second[0] == 2
    assert "--force" in second[2]


def test_sync_then_reads_work_with_json_output(vx):
    code, _out, err = vx("sync")
    listed_code, listed, list_err = vx(
        "sessions", "list", "--limit", "5", "--format", "json"
    )

    rows = json.loads(listed)
    assert code == 0
    assert "sync 1 ok: listed 100, new 100" in err
    assert listed_code == 0
    assert len(rows) == 5
    assert rows[0]["started_at"].endswith("Z")
    assert "cached" in list_err


def test_reads_work_offline_after_the_node_stops(vx, devnode):
    vx("sync", "--no-pull")
    devnode.stop()

    code, out, err = vx(
        "sessions", "list", "--limit", "3", "--format", "csv", "--offline"
    )

    assert code == 0
    assert out.splitlines()[0].startswith("session_id,status")
    assert len(out.splitlines()) == 4
    assert "cached" in err


def test_show_refresh_with_node_down_notes_it_and_serves_the_cache(vx, devnode):
    vx("sync", "--no-pull")
    session_id = json.loads(
        vx("sessions", "list", "--limit", "1", "--format", "json")[1]
    )[0]["session_id"]
    devnode.stop()

    code, out, err = vx("sessions", "show", session_id, "--refresh", "--format", "json")

    assert code == 0
    assert json.loads(out)["session_id"] == session_id
    assert "node unreachable" in err


def test_sync_with_node_down_exits_3_with_one_line(vx, devnode):
    devnode.stop()

    code, out, err = vx("sync")

    last_line = err.splitlines()[-1]
    assert code == 3
    assert out == ""
    assert err.count("Error: ") == 1
    assert last_line.startswith("Error: ")
    assert "unreachable" in last_line
    assert "Traceback" not in err


def test_a_sync_whose_pulls_all_fail_exits_1_in_two_lines(vx, devnode):
    httpx.put(
        f"{devnode.url}/_admin/faults", json={"error_rate": 1.0, "routes": ["pull"]}
    ).raise_for_status()

    code, _out, err = vx("sync")

    lines = err.strip().splitlines()
    assert code == 1
    assert lines[-2].startswith("sync 1 partial: listed 100, new 100")
    assert lines[-1] == (
        "Error: sync 1 is partial: 100 of 100 pulls failed; the next sync tries again"
    )
    assert len(lines) == 3  # one warning for the failed pulls, not one for each
    assert "pull failed for 100 of 100 sessions" in lines[0]


def test_status_ends_with_the_staleness_line_and_the_nodes_trouble(vx, devnode):
    vx("sync")
    devnode.stop()

    code, out, err = vx("status", "--format", "json")

    assert (code, json.loads(out)["last_attempt_outcome"]) == (0, "ok")
    assert err.strip().splitlines()[-1].startswith("cached ")
    assert "; node unreachable (connection refused)" in err


def test_a_parameter_given_twice_is_refused(vx):
    code, out, err = vx("query", "SELECT $x AS x", "-p", "x=1", "-p", "x=2")

    assert (code, out) == (2, "")
    assert "'x' is given twice" in err


def test_an_unknown_report_is_bad_input(vx):
    vx("sync")

    code, out, err = vx("report", "nosuch")

    assert (code, out) == (2, "")
    assert "there is no report named 'nosuch'" in err


def test_the_devnode_banner_shows_only_a_token_it_chose():
    def banner(*token: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "vxcache", "devnode", "--port", str(free_port()),
             *token],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            return process.stderr.readline()
        finally:
            process.terminate()
            process.communicate(timeout=10)

    given, chosen = banner("--token", "s3cret-given"), banner()

    assert "token=(as given)" in given
    assert "s3cret-given" not in given
    assert "token=devnode-token" in chosen


def test_sync_offline_exits_3(vx):
    assert vx("sync", "--offline")[0] == 3


def test_wrong_token_exits_1_and_never_prints_the_token(vx, monkeypatch):
    monkeypatch.setenv("VXCACHE_TOKEN", "wrong-token-abcdef")

    code, out, err = vx("sync")

    assert code == 1
    assert "wrong-token-abcdef" not in out + err
    assert "VXCACHE_TOKEN" in err


def test_bad_option_exits_2(vx):
    code, _out, err = vx("sessions", "list", "--limit", "zero")

    assert code == 2
    assert err.startswith("Error: ")


def test_bad_config_exits_2_naming_the_key(vx, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[sync]\ninterval = 5m\n")

    code, _out, err = vx("status", "--config", str(config))

    assert code == 2
    assert "key 'interval'" in err


def test_unknown_session_exits_1(vx):
    vx("sync", "--no-pull")

    code, _out, err = vx("sessions", "show", "ses_nope")

    assert code == 1
    assert "not in the cache" in err


def test_artifacts_get_and_export(vx, tmp_path):
    vx("sync")
    session_id = json.loads(
        vx("sessions", "list", "--limit", "1", "--format", "json")[1]
    )[0]["session_id"]
    names = [
        a["name"]
        for a in json.loads(vx("artifacts", "list", session_id, "--format", "json")[1])
    ]

    code, _out, _err = vx("artifacts", "export", session_id, str(tmp_path / "out"))
    again = vx("artifacts", "export", session_id, str(tmp_path / "out"))

    assert code == 0
    assert sorted(os.listdir(tmp_path / "out")) == sorted(names)
    assert again[0] == 1
    assert "exists" in again[2]


def test_a_read_never_creates_a_cache(vx, tmp_path):
    missing = tmp_path / "nowhere" / "x.db"

    code, out, err = vx("sessions", "list", "--db", str(missing))

    assert code == 1
    assert out == ""
    assert "there is no cache" in err
    assert not missing.parent.exists()


def test_show_refresh_with_a_rejected_token_fails_instead_of_falling_back(
    vx, monkeypatch
):
    vx("sync", "--no-pull")
    listed = vx("sessions", "list", "--limit", "1", "--format", "json")[1]
    session_id = json.loads(listed)[0]["session_id"]
    monkeypatch.setenv("VXCACHE_TOKEN", "not-the-token")

    code, _out, err = vx("sessions", "show", session_id, "--refresh")

    assert code == 1
    assert "rejected the token" in err


def test_quiet_hides_retry_warnings_but_not_the_error(vx, devnode):
    devnode.stop()

    code, _out, err = vx("-q", "sync")

    assert code == 3
    assert err.splitlines() == [err.splitlines()[-1]]
    assert err.startswith("Error: ")


def test_warnings_are_brief_lines_without_timestamps(vx, devnode):
    devnode.stop()

    _code, _out, err = vx("sync")

    assert err.splitlines()[0].startswith("warning: node request retried")


def test_query_output_to_a_missing_folder_exits_2(vx, tmp_path):
    vx("sync", "--no-pull")

    code, _out, err = vx(
        "query", "SELECT 1 AS one", "-o", str(tmp_path / "no" / "x.csv")
    )

    assert code == 2
    assert err.startswith("Error: cannot write")


def test_tables_round_floats_for_reading_while_csv_keeps_them_exact(vx):
    vx("sync", "--no-pull")
    sql = "SELECT 1 / 14 AS rate, 1234567.25 :: DOUBLE AS big"

    table = vx("query", sql)[1]
    csv_out = vx("query", sql, "--format", "csv")[1]

    assert "0.0714286" in table
    assert "0.07142857" not in table
    assert "1234567.2" in table
    assert "e+" not in table
    assert csv_out == "rate,big\n0.07142857142857142,1234567.25\n"


def test_query_output_file_is_private_csv(vx, tmp_path):
    vx("sync", "--no-pull")
    target = tmp_path / "out.csv"

    code, _out, _err = vx("query", "SELECT 1 AS a, 'x,y' AS b", "-o", str(target))

    assert code == 0
    assert target.read_text() == 'a,b\n1,"x,y"\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_listed_session_shows_when_the_last_list_saw_it(vx):
    vx("sync", "--no-pull")
    listed = vx("sessions", "list", "--limit", "1", "--format", "json")[1]
    session_id = json.loads(listed)[0]["session_id"]

    shown = json.loads(vx("sessions", "show", session_id, "--format", "json")[1])
    seen = vx(
        "query", "SELECT max(listed_at) AS seen FROM sync_runs", "--format", "json"
    )

    assert shown["last_seen_at"] == json.loads(seen[1])[0]["seen"]


def test_bad_value_from_an_option_is_blamed_on_the_option(vx):
    code, _out, err = vx("status", "--node", "notaurl")

    assert code == 2
    assert "(from a command-line option)" in err


def test_serve_on_a_busy_port_exits_2_before_syncing(vx):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        code, _out, err = vx("serve", "--port", str(port))

    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_a_second_schedule_on_the_same_cache_is_refused(vx, settings):
    held = claim_schedule(settings)
    assert held is not None
    try:
        code, _out, err = vx("sync", "--every", "1m")
    finally:
        held.release()

    assert code == 1
    assert "already syncs" in err
    assert not settings.cache.db_path.exists()  # refused before any sync
