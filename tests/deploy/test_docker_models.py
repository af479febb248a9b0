"""Against the private Docker engine (tests/docker_host.py): what a Jetson head and a GPU tail are given, and the
fleet's model copied into the model volume only when its digest differs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from ruamel.yaml import YAML

from splitinfer.cli.app import app
from splitinfer.deploy import Engine
from tests.cli.streams import both, cli_runner
from tests.docker_host import node_env, node_mounts

pytestmark = [pytest.mark.docker, pytest.mark.slow]

runner = cli_runner()
FLEET = "mtest"
NODE = "import os, time; print('node', os.environ['SPLITINFER_DEVICE_ID'], 'up', flush=True); time.sleep(999)"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory, dockerd: str, node_image: str) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("models")
    (folder / "weights").mkdir()
    (folder / "weights" / "best.pt").write_bytes(b"weights v1" * 100_000)  # ~1 MB: streamed both ways
    (folder / "calib.json").write_text('{"scale": 1}')

    def device(device_id: str, role: str) -> Dict[str, Any]:
        d: Dict[str, Any] = {"id": device_id, "role": role, "docker": dockerd, "env": node_env(),
                             "volumes": node_mounts(), "command": ["python3", "-u", "-c", NODE]}
        if role == "head":
            d["source"] = "synthetic"
        return d

    fleet = {
        "fleet": FLEET,
        "broker": {"url": "mqtt://127.0.0.1:9"},
        "model": {"path": "weights/best.pt", "sha256": _sha((folder / "weights" / "best.pt").read_bytes()),
                  "tables": [{"path": "calib.json", "sha256": _sha(b'{"scale": 1}')}], "imgsz": 128},
        "images": {"head": node_image, "tail": node_image},
        "devices": [device("tail-1", "tail"), device("head-1", "head")],
    }
    path = folder / "fleet.yaml"
    path.write_text(json.dumps(fleet, indent=2))
    yield path
    with Engine.connect(dockerd) as engine:
        for state in engine.containers({"splitinfer.fleet": FLEET}):
            engine.remove(state.id)


def _deploy(path: Path) -> List[Dict[str, Any]]:
    result = runner.invoke(app, ["deploy", "--json", "-f", str(path), "--grace", "1"])
    assert result.exit_code == 0, both(result)
    devices: List[Dict[str, Any]] = json.loads(result.stdout)["devices"]
    return devices


def _volume_sha(dockerd: str, node_image: str, name: str) -> str:
    """The sha256 of a file of the fleet's model volume, as a node container that mounts it computes it (output
    kept short: Docker's logs split long lines)."""
    return _in_volume(dockerd, node_image, f"import hashlib; print(hashlib.sha256(open('/models/{name}', "
                                           "'rb').read()).hexdigest())")


def _in_volume(dockerd: str, node_image: str, code: str) -> str:
    import docker

    client = docker.DockerClient(base_url=dockerd)
    try:
        out = client.containers.run(node_image, ["python3", "-c", code], remove=True, network_mode="none",
                                    environment=node_env(),
                                    volumes=[f"splitinfer-{FLEET}-models:/models:ro", *node_mounts()])
    finally:
        client.close()
    return bytes(out).decode().strip()


def test_dry_run_shows_the_jetson_runtime_and_the_tails_gpu_request(tmp_path: Path, dockerd: str,
                                                                    node_image: str) -> None:
    fleet = {
        "fleet": "gpus",
        "broker": {"url": "mqtt://127.0.0.1:9"},
        "images": {"head": node_image, "tail": node_image},
        "devices": [
            {"id": "jetson-1", "role": "head", "docker": dockerd, "source": "csi://0", "runtime": "nvidia",
             "device": "cuda"},
            {"id": "jetson-2", "role": "head", "docker": dockerd, "source": "0", "runtime": "nvidia"},
            {"id": "gpu-1", "role": "tail", "docker": dockerd, "gpus": "all", "half": True},
        ],
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(json.dumps(fleet))
    result = runner.invoke(app, ["deploy", "--dry-run", "--json", "-f", str(path)])
    assert result.exit_code == 0, both(result)
    steps = {d["device"]: d for d in json.loads(result.stdout)["devices"]}
    assert [d["action"] for d in steps.values()] == ["create", "create", "create"]
    jetson, usb, gpu = steps["jetson-1"]["spec"], steps["jetson-2"]["spec"], steps["gpu-1"]["spec"]
    assert jetson["runtime"] == "nvidia" and jetson["device_requests"] == [] and jetson["gpus"] is None
    assert jetson["env"]["SPLITINFER_DEVICE"] == "cuda" and "/tmp/argus_socket:/tmp/argus_socket" in jetson["volumes"]
    assert usb["env"]["SPLITINFER_DEVICE"] == "auto" and usb["devices"] == ["/dev/video0"]
    assert gpu["runtime"] is None and gpu["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    assert gpu["env"]["SPLITINFER_DEVICE"] == "auto" and gpu["env"]["SPLITINFER_HALF"] == "1"
    assert runner.invoke(app, ["deploy", "--dry-run", "-f", str(path)]).exit_code == 0  # the table twin
    with Engine.connect(dockerd) as engine:
        assert engine.containers({"splitinfer.fleet": "gpus"}) == []  # a dry run changes nothing


def test_first_deploy_copies_the_model_and_table_once_per_engine(fleet_file: Path, dockerd: str,
                                                                 node_image: str) -> None:
    devices = _deploy(fleet_file)
    assert [(d["device"], d["status"], d["models_copied"]) for d in devices] == [
        ("tail-1", "created", ["best.pt", "calib.json"]),
        ("head-1", "created", []),  # same engine, same volume: already there with the same digest
    ]
    weights = (fleet_file.parent / "weights" / "best.pt").read_bytes()
    assert _volume_sha(dockerd, node_image, "best.pt") == _sha(weights)
    marker = _in_volume(dockerd, node_image, "print(repr(open('/models/best.pt.sha256').read()))")
    assert marker == repr(_sha(weights) + "\n")
    assert _volume_sha(dockerd, node_image, "calib.json") == _sha(b'{"scale": 1}')

    import docker

    client = docker.DockerClient(base_url=dockerd)
    attrs = client.api.inspect_container("splitinfer-head-1")
    names = [n for c in client.api.containers(all=True) for n in c["Names"]]
    client.close()
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["SPLITINFER_MODEL_DIR"] == "/models" and env["SPLITINFER_CACHE"] == "/cache"
    assert env["SPLITINFER_DEVICE"] == "auto"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/models"]["Name"] == f"splitinfer-{FLEET}-models" and mounts["/models"]["RW"] is False
    assert mounts["/cache"]["Name"] == f"splitinfer-{FLEET}-cache" and mounts["/cache"]["RW"] is True
    assert not any(name.endswith("-models") for name in names)  # the copy's helper container is gone


def test_a_second_deploy_copies_nothing(fleet_file: Path) -> None:
    assert [(d["status"], d["models_copied"]) for d in _deploy(fleet_file)] == [("kept", []), ("kept", [])]


def test_a_changed_model_is_copied_again_without_recreating_anything(fleet_file: Path, dockerd: str,
                                                                     node_image: str) -> None:
    new = b"weights v2" * 120_000
    (fleet_file.parent / "weights" / "best.pt").write_bytes(new)
    stale = runner.invoke(app, ["deploy", "--json", "-f", str(fleet_file), "--grace", "1"])
    assert stale.exit_code == 1
    assert f'is not the digest of {fleet_file.parent / "weights" / "best.pt"}' in both(stale)
    assert f'sha256: "{_sha(new)}"' in both(stale)  # the digest to paste

    yaml = YAML(typ="rt")
    document = yaml.load(fleet_file.read_text())
    document["model"]["sha256"] = _sha(new)
    with fleet_file.open("w") as handle:
        yaml.dump(document, handle)
    devices = _deploy(fleet_file)
    assert [(d["status"], d["models_copied"]) for d in devices] == [("kept", ["best.pt"]), ("kept", [])]
    assert _volume_sha(dockerd, node_image, "best.pt") == _sha(new)
