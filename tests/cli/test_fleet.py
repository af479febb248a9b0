"""The fleet-facing commands through Typer's CliRunner (no Docker engine needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()


def _flat(text: str) -> str:
    """Rich wraps long error lines at the terminal width; tests compare the words."""
    return " ".join(text.split())


FLEET = """\
# my fleet
fleet: t
broker: {url: "mqtt://127.0.0.1:1883"}
devices:
  - {id: gpu-1, role: tail, docker: "unix:///nonexistent/d.sock"}   # server room
"""


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return path


def test_help_lists_nouns() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for noun in ("fleet", "deploy", "status", "logs"):
        assert noun in result.stdout


def test_fleet_add_list_rm(fleet_file: Path) -> None:
    add = [
        "fleet",
        "add",
        "cam-1",
        "--role",
        "head",
        "--docker",
        "ssh://n@cam-1",
        "--source",
        "0",
        "--cut",
        "a",
        "--runtime",
        "nvidia",
        "--env",
        "A=1",
        "--device",
        "/dev/video0",
        "-f",
        str(fleet_file),
    ]
    result = runner.invoke(app, add)
    assert result.exit_code == 0, result.output
    assert "added head cam-1" in _flat(result.stderr)
    assert "# server room" in fleet_file.read_text()
    # the nodes' default model made explicit, for the user to edit
    assert "wrote model: {path: yolo11n.pt, imgsz: 640}" in _flat(result.stderr)
    assert 'broker: {url: "mqtt://127.0.0.1:1883"}\nmodel:\n  path: yolo11n.pt  # every node loads' in (
        fleet_file.read_text())

    listed = runner.invoke(app, ["fleet", "list", "--json", "-f", str(fleet_file)])
    assert listed.exit_code == 0
    data = json.loads(listed.stdout)
    assert [(d["id"], d["role"], d["cut"]) for d in data["devices"]] == [
        ("gpu-1", "tail", None),
        ("cam-1", "head", "a"),
    ]
    assert data["devices"][1]["gpu"] == "nvidia runtime"

    table = runner.invoke(app, ["fleet", "list", "-f", str(fleet_file)])
    assert "cam-1" in table.stdout and "gpu-1" in table.stdout

    rm = runner.invoke(app, ["fleet", "rm", "cam-1", "-f", str(fleet_file)])
    assert rm.exit_code == 0 and "`fleet rm --down` removes both" in _flat(rm.stderr)
    assert "docker rm -f splitinfer-cam-1" in _flat(rm.stderr)
    without_model = "".join(line for line in fleet_file.read_text().splitlines(keepends=True)
                            if not line.startswith(("model:", "  path:", "  imgsz:")))
    assert without_model == FLEET


def test_fleet_add_keeps_a_model_section_that_is_there(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("devices:", "model: {path: best.pt, imgsz: 320}\ndevices:"))
    result = runner.invoke(app, ["fleet", "add", "tail-2", "--role", "tail", "--docker", "unix:///x", "-f", str(path)])
    assert result.exit_code == 0 and "wrote model" not in result.stderr
    assert "model: {path: best.pt, imgsz: 320}" in path.read_text()


def test_fleet_rm_down_leaves_the_file_alone_when_the_engine_cannot_be_reached(fleet_file: Path) -> None:
    result = runner.invoke(app, ["fleet", "rm", "gpu-1", "--down", "--timeout", "1", "-f", str(fleet_file)])
    assert result.exit_code == 1
    assert "gpu-1: cannot reach the Docker engine" in _flat(result.stderr) and "is unchanged" in _flat(result.stderr)
    assert fleet_file.read_text() == FLEET
    unknown = runner.invoke(app, ["fleet", "rm", "gpu-9", "--down", "-f", str(fleet_file)])
    assert unknown.exit_code == 1 and "no device 'gpu-9'" in unknown.stderr


def test_down_reports_unreachable_engines_and_exits_1(fleet_file: Path) -> None:
    result = runner.invoke(app, ["down", "--json", "--timeout", "1", "-f", str(fleet_file)])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"fleet": "t", "ok": False, "devices": [{
        "device": "gpu-1", "role": "tail", "status": "unreachable", "removed": [], "kept": [],
        "message": "gpu-1: cannot reach the Docker engine at unix:///nonexistent/d.sock: no such socket"}]}
    only = runner.invoke(app, ["down", "--only", "nope", "-f", str(fleet_file)])
    assert only.exit_code == 1 and "--only: no device 'nope' in the fleet (devices: gpu-1)" in _flat(only.stderr)


def test_fleet_file_from_environment(fleet_file: Path) -> None:
    result = runner.invoke(app, ["fleet", "list", "--json"], env={"SPLITINFER_FLEET": str(fleet_file)})
    assert result.exit_code == 0 and json.loads(result.stdout)["fleet"] == "t"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "hed", "--docker", "unix:///x"], "error: --role: expected 'head' or 'tail', got 'hed'"),
        (["--role", "head", "--docker", "unix:///x"], "error: --source: a head needs a source"),
        (
            ["--role", "head", "--docker", "unix:///x", "--source", "0", "--cut", "q"],
            "error: --cut: expected a, b, c, d, auto, local, offload or a layer index ≥ 1, got 'q'",
        ),
        (["--role", "tail", "--docker", "http://x"], "error: --docker: expected unix://PATH"),
        (["--role", "tail", "--docker", "unix:///x", "--env", "NOPE"], "error: --env: expected KEY=VALUE, got 'NOPE'"),
    ],
)
def test_fleet_add_bad_options(fleet_file: Path, args: list, message: str) -> None:
    result = runner.invoke(app, ["fleet", "add", "cam-9", *args, "-f", str(fleet_file)])
    assert result.exit_code == 1
    assert _flat(result.stderr).startswith(message)
    assert fleet_file.read_text() == FLEET


def test_fleet_add_duplicate(fleet_file: Path) -> None:
    result = runner.invoke(
        app, ["fleet", "add", "gpu-1", "--role", "tail", "--docker", "unix:///x", "-f", str(fleet_file)]
    )
    assert result.exit_code == 1
    assert "devices[1].id: duplicate id 'gpu-1' (already used by devices[0])" in _flat(result.stderr)


def test_config_errors_exit_1_with_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("role: tail", "role: hed"))
    for command in (["fleet", "list"], ["deploy", "--dry-run"], ["status"], ["fleet", "check"]):
        result = runner.invoke(app, [*command, "-f", str(path)])
        assert result.exit_code == 1
        assert _flat(result.stderr) == f"error: {path}: devices[0].role: expected 'head' or 'tail', got 'hed'"


def test_missing_fleet_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "nope.yaml: file not found; pass -f/--file" in _flat(result.stderr)


def test_unreachable_engine_check_and_deploy(fleet_file: Path) -> None:
    check = runner.invoke(app, ["fleet", "check", "--json", "--timeout", "1", "-f", str(fleet_file)])
    assert check.exit_code == 1
    data = json.loads(check.stdout)
    assert data["reachable"] == 0 and data["devices"][0]["reachable"] is False
    assert "cannot reach the Docker engine at unix:///nonexistent/d.sock" in data["devices"][0]["error"]
    assert "1 of 1 engines unreachable" in check.stderr

    deploy = runner.invoke(app, ["deploy", "-f", str(fleet_file)])
    assert deploy.exit_code == 1
    assert "nothing was deployed (1 unreachable: gpu-1)" in _flat(deploy.stderr)

    dry = runner.invoke(app, ["deploy", "--dry-run", "--json", "-f", str(fleet_file)])
    assert dry.exit_code == 1 and json.loads(dry.stdout)["devices"][0]["action"] == "unreachable"

    status = runner.invoke(app, ["status", "--json", "-f", str(fleet_file)])
    assert status.exit_code == 0
    row = json.loads(status.stdout)["devices"][0]
    assert row["state"] == "unreachable" and row["mqtt"] is None


def test_deploy_bad_cut_override(fleet_file: Path) -> None:
    result = runner.invoke(app, ["deploy", "--cut", "x", "-f", str(fleet_file)])
    assert result.exit_code == 1
    assert "--cut: expected a, b, c, d, auto, local, offload or a layer index" in _flat(result.stderr)


def test_logs_unknown_device(fleet_file: Path) -> None:
    result = runner.invoke(app, ["logs", "nope", "--file", str(fleet_file)])
    assert result.exit_code == 1 and "no device 'nope' in fleet 't' (devices: gpu-1)" in _flat(result.stderr)


def test_options_survive_python38_typer() -> None:
    """On Python < 3.10 Typer reads annotations without evaluating strings: they must be real objects.

    (The Jetson image runs this CLI on Python 3.8; a postponed ``Annotated`` option would become an argument.)
    """
    import inspect

    from splitinfer.cli import deploy, fleet, logs, status

    commands = [deploy.deploy, status.status, logs.logs, fleet.add, fleet.list_, fleet.rm, fleet.check]
    for command in commands:
        for name, param in inspect.signature(command).parameters.items():
            assert not isinstance(param.annotation, str), f"{command.__name__}({name}): postponed annotation"


def test_status_watch_redraws_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from splitinfer.broker.local import child_env

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "fleet: w\nbroker: {url: 'mqtt://127.0.0.1:1'}\n"
        "devices:\n  - {id: cam-1, role: head, docker: 'unix:///nowhere.sock', source: '0'}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitinfer", "status", "--watch", "--interval", "0.5", "-f", str(fleet)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
    )
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert out.decode().count("unreachable") >= 2  # drawn more than once
    assert b"broker mqtt://127.0.0.1:1 unreachable" in err
