"""Deploy, status and logs against a real Docker engine (see tests/docker_host.py for the engine and the image).

Until the node runtime exists, each device's ``command`` (a documented fleet.yaml field) runs a stand-in node:
this machine's Python importing splitinfer from the mounted src, printing a line and sleeping.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from splitinfer.cli.app import app
from splitinfer.deploy import Engine
from tests.docker_host import node_env, node_mounts

pytestmark = [pytest.mark.docker, pytest.mark.slow]

runner = CliRunner()
NODE = (
    "import os, time, splitinfer; print('node', os.environ['SPLITINFER_DEVICE_ID'], 'up', flush=True); time.sleep(999)"
)
GRACE = ["--grace", "1"]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _device(device_id: str, role: str, endpoint: str) -> Dict[str, Any]:
    device: Dict[str, Any] = {"id": device_id, "role": role, "docker": endpoint}
    if role == "head":
        device["source"] = f"/videos/{device_id}.mp4"
    device.update(env=node_env(), volumes=node_mounts(), command=["python3", "-u", "-c", NODE])
    return device


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory, dockerd: str, node_image: str) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet = {
        "fleet": "itest",
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "defaults": {"cut": "b", "bits": 4},
        "images": {"head": node_image, "tail": node_image},
        "devices": [
            _device("head-1", "head", dockerd),
            _device("tail-1", "tail", dockerd),
            _device("head-2", "head", dockerd),
        ],
    }
    path.write_text("# integration fleet\n" + json.dumps(fleet, indent=2))  # JSON is YAML
    yield path
    with Engine.connect(dockerd) as engine:
        for state in engine.containers({"splitinfer.fleet": "itest"}):
            engine.remove(state.id)


def _edit(path: Path, change: Any) -> None:
    yaml = YAML(typ="rt")
    document = yaml.load(path.read_text())
    change(document)
    with path.open("w") as handle:
        yaml.dump(document, handle)


def _ids(dockerd: str) -> Dict[str, str]:
    with Engine.connect(dockerd) as engine:
        return {s.labels["splitinfer.device"]: s.id for s in engine.containers({"splitinfer.fleet": "itest"})}


def _deploy(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["deploy", "--json", "-f", str(path), *GRACE, *extra])


def test_node_image_runs_python_from_the_host(dockerd: str, node_image: str) -> None:
    import docker

    client = docker.DockerClient(base_url=dockerd)
    volumes = [m for m in node_mounts()]
    output = client.containers.run(
        node_image,
        ["python3", "-c", "import splitinfer; print(splitinfer.__file__)"],
        environment=node_env(),
        volumes=volumes,
        network_mode="host",
        remove=True,
    )
    # the image carries PATH and PYTHONPATH: with the mounts alone, `splitctl` is the environment's own
    version = client.containers.run(node_image, ["splitctl", "--version"], volumes=volumes, network_mode="host",
                                    remove=True)
    client.close()
    assert output.decode().strip() == "/opt/splitinfer/src/splitinfer/__init__.py"
    assert version.decode().startswith("splitctl ")


def test_first_deploy_creates_containers_tails_first(fleet_file: Path, dockerd: str) -> None:
    result = _deploy(fleet_file)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [(d["device"], d["status"]) for d in data["devices"]] == [
        ("tail-1", "created"),
        ("head-1", "created"),
        ("head-2", "created"),
    ]
    statuses = {d["device"]: d["assignment_status"] for d in data["devices"]}
    assert statuses["head-1"] == "pending (broker mqtt://127.0.0.1:1883 unreachable)"

    import docker

    client = docker.DockerClient(base_url=dockerd)
    attrs = client.api.inspect_container("splitinfer-head-1")
    client.close()
    labels = attrs["Config"]["Labels"]
    assert labels["splitinfer.fleet"] == "itest" and labels["splitinfer.role"] == "head"
    assert labels["splitinfer.device"] == "head-1" and len(labels["splitinfer.config-hash"]) == 16
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["SPLITINFER_BROKER_URL"] == "mqtt://127.0.0.1:1883" and env["SPLITINFER_DEVICE_ID"] == "head-1"
    assert env["SPLITINFER_FLEET_NAME"] == "itest" and env["SPLITINFER_ROLE"] == "head"
    assert env["SPLITINFER_SOURCE"] == "/videos/head-1.mp4"
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "host" and host["RestartPolicy"]["Name"] == "unless-stopped" and host["Init"]
    assert all(m["RW"] is (m["Destination"] == "/cache") for m in attrs["Mounts"])  # the profile cache is written
    assert attrs["State"]["Running"]


def test_status_lists_running_containers(fleet_file: Path) -> None:
    result = runner.invoke(app, ["status", "--json", "-f", str(fleet_file)])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)["devices"]}
    assert set(rows) == {"head-1", "head-2", "tail-1"}
    for row in rows.values():
        assert row["state"] == "running" and row["hash_match"] is True and row["mqtt"] is None
        assert row["image"] == "splitinfer-test-node:busybox" and row["started_at"]
    assert rows["head-1"]["desired_cut"] == "b" and rows["tail-1"]["desired_cut"] is None
    table = runner.invoke(app, ["status", "-f", str(fleet_file)])
    assert table.exit_code == 0 and "head-1" in table.stdout and "running" in table.stdout
    assert "health" in table.stdout and "--wide for image" in _flat(table.stdout)


def test_logs_returns_container_output(fleet_file: Path) -> None:
    result = runner.invoke(app, ["logs", "head-1", "--tail", "5", "--file", str(fleet_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "node head-1 up\n"
    since = runner.invoke(app, ["logs", "tail-1", "--since", "10m", "--file", str(fleet_file)])
    assert since.stdout == "node tail-1 up\n"


def test_follow_reassembles_lines_until_the_container_stops(dockerd: str, node_image: str) -> None:
    import docker

    client = docker.DockerClient(base_url=dockerd)
    script = "printf 'one\\ntw'; sleep 0.3; printf 'o\\nthree\\n'; sleep 0.3; echo four"
    container = client.containers.run(node_image, ["sh", "-c", script], detach=True)
    lines: List[str] = []
    with Engine.connect(dockerd) as engine:
        reader = threading.Thread(target=lambda: lines.extend(engine.logs(container.id, follow=True)))
        reader.start()
        reader.join(timeout=20)
    container.remove(force=True)
    client.close()
    assert lines == ["one", "two", "three", "four"]


def test_second_deploy_recreates_nothing(fleet_file: Path, dockerd: str) -> None:
    before = _ids(dockerd)
    result = _deploy(fleet_file)
    assert result.exit_code == 0, result.output
    assert [d["status"] for d in json.loads(result.stdout)["devices"]] == ["kept", "kept", "kept"]
    assert _ids(dockerd) == before


def test_changing_the_cut_does_not_recreate(fleet_file: Path, dockerd: str) -> None:
    before = _ids(dockerd)
    result = _deploy(fleet_file, "--cut", "d", "--bits", "6")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["devices"]
    assert [d["status"] for d in data] == ["kept", "kept", "kept"]
    assert {d["device"]: d["assignment"]["cut"] for d in data} == {"tail-1": None, "head-1": "d", "head-2": "d"}
    _edit(fleet_file, lambda doc: doc["defaults"].__setitem__("cut", 7))
    assert _deploy(fleet_file).exit_code == 0
    assert _ids(dockerd) == before
    state = json.loads(fleet_file.with_name("fleet.state.json").read_text())
    assert state["devices"]["head-2"]["assignment"]["cut"] == 7


def test_config_change_recreates_only_that_device(fleet_file: Path, dockerd: str) -> None:
    before = _ids(dockerd)
    _edit(fleet_file, lambda doc: doc["devices"][0]["env"].__setitem__("EXTRA", "1"))
    result = _deploy(fleet_file)
    assert result.exit_code == 0, result.output
    assert [d["status"] for d in json.loads(result.stdout)["devices"]] == ["kept", "recreated", "kept"]
    after = _ids(dockerd)
    assert after["head-1"] != before["head-1"]
    assert {k: v for k, v in after.items() if k != "head-1"} == {k: v for k, v in before.items() if k != "head-1"}


def test_failed_start_rolls_back_to_the_previous_container(fleet_file: Path, dockerd: str) -> None:
    before = _ids(dockerd)
    crash = ["sh", "-c", "echo 'loading model'; echo 'boom: no such model' >&2; exit 1"]
    _edit(fleet_file, lambda doc: doc["devices"][2].__setitem__("command", crash))
    result = runner.invoke(app, ["deploy", "-f", str(fleet_file), *GRACE])
    assert result.exit_code == 1
    stderr = _flat(result.stderr)
    assert "head-2: the new container exited with status 1 right after starting; rolled back to the previous" in stderr
    assert "last log lines of head-2:" in stderr
    logs = result.stderr.split("last log lines of head-2:")[1].splitlines()
    assert {"loading model", "boom: no such model"} <= set(logs)  # stdout and stderr: order not guaranteed
    assert _ids(dockerd) == before
    with Engine.connect(dockerd) as engine:
        restored = engine.container("splitinfer-head-2")
        assert restored is not None and restored.running
        assert engine.container("splitinfer-head-2-previous") is None
    _edit(fleet_file, lambda doc: doc["devices"][2].__setitem__("command", ["python3", "-u", "-c", NODE]))


def test_fleet_check_reports_the_engine(fleet_file: Path) -> None:
    result = runner.invoke(app, ["fleet", "check", "--json", "-f", str(fleet_file)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["devices"]
    assert all(r["reachable"] for r in rows)
    assert rows[0]["engine"].startswith("20.10") and rows[0]["arch"] == "x86_64"
    assert rows[0]["free_disk"] > 0 and rows[0]["nvidia_runtime"] is False


def test_unreachable_engine_changes_nothing(fleet_file: Path, dockerd: str) -> None:
    before = _ids(dockerd)
    dead = f"unix:///tmp/si-{os.getpid()}-none.sock"  # short: Rich wraps long words mid-word
    _edit(fleet_file, lambda doc: doc["devices"].append({"id": "tail-9", "role": "tail", "docker": dead}))
    _edit(fleet_file, lambda doc: doc["devices"][0]["env"].__setitem__("EXTRA", "2"))
    result = runner.invoke(app, ["deploy", "-f", str(fleet_file), *GRACE])
    assert result.exit_code == 1
    assert f"error: tail-9: cannot reach the Docker engine at {dead}: no such socket; nothing was deployed" in _flat(
        result.stderr
    )
    assert _ids(dockerd) == before
    check = runner.invoke(app, ["fleet", "check", "-f", str(fleet_file)])
    assert check.exit_code == 1 and "1 of 4 engines unreachable" in check.stderr
    status = runner.invoke(app, ["status", "--json", "-f", str(fleet_file)])
    assert status.exit_code == 0
    rows = {row["id"]: row for row in json.loads(status.stdout)["devices"]}
    assert rows["tail-9"]["state"] == "unreachable" and rows["head-1"]["hash_match"] is False


def test_down_removes_what_deploy_created_and_nothing_else(fleet_file: Path, dockerd: str, node_image: str) -> None:
    import docker

    client = docker.DockerClient(base_url=dockerd)
    # what an interrupted deploy leaves (with a named volume: data is kept), and a container deploy did not make
    labels = {"splitinfer.fleet": "itest", "splitinfer.device": "head-2", "splitinfer.role": "head"}
    client.containers.create(node_image, ["sleep", "999"], name="splitinfer-head-2-previous", labels=labels,
                             volumes=["itest-data:/data"])
    bystander = client.containers.run(node_image, ["sleep", "999"], name="splitinfer-head-1-previous", detach=True)
    try:
        one = runner.invoke(app, ["down", "--only", "head-2", "-f", str(fleet_file), "--stop-timeout", "1"])
        assert one.exit_code == 0, one.output
        assert "splitinfer-head-2, splitinfer-head-2-previous" in _flat(one.stdout)
        assert set(_ids(dockerd)) == {"head-1", "tail-1"}
        state = json.loads(fleet_file.with_name("fleet.state.json").read_text())
        assert "head-2" not in state["devices"] and "head-1" in state["devices"]

        rm = runner.invoke(app, ["fleet", "rm", "head-1", "--down", "-f", str(fleet_file)])
        assert rm.exit_code == 0, rm.output
        assert "head-1" not in {d["id"] for d in yaml_devices(fleet_file)} and set(_ids(dockerd)) == {"tail-1"}
        assert "left splitinfer-head-1-previous: not made by deploy for fleet itest" in _flat(rm.stderr)

        # tail-9 (added by an earlier test) has no engine: the others are still taken down, and it says so
        everything = runner.invoke(app, ["down", "-f", str(fleet_file), "--stop-timeout", "1"])
        assert everything.exit_code == 1
        assert "tail-9: cannot reach the Docker engine" in _flat(everything.stderr)
        assert "1 of 3 devices not cleaned up" in everything.stderr
        assert _ids(dockerd) == {}  # no container of the fleet left behind
        assert client.containers.get(bystander.id).status == "running"  # not this fleet's: left alone
        assert client.volumes.get("itest-data") is not None
    finally:
        bystander.remove(force=True)
        client.volumes.get("itest-data").remove(force=True)
        client.close()


def yaml_devices(path: Path) -> List[Dict[str, Any]]:
    return list(YAML(typ="safe").load(path.read_text())["devices"])
