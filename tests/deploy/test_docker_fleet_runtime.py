"""A real fleet: two heads and a tail deployed as containers running `splitctl node`, a real Mosquitto, and the
coordinator following fleet.yaml. Detections flow; status shows the live view; deploy --cut reassigns live."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
from typer.testing import CliRunner

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, find_mosquitto, start_local_broker
from splitinfer.broker.topics import Topics
from splitinfer.cli.app import app
from splitinfer.deploy import Engine
from tests.docker_host import node_env, node_mounts

pytestmark = [pytest.mark.docker, pytest.mark.mosquitto, pytest.mark.model, pytest.mark.slow]

runner = CliRunner()
FLEET = "rt"


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/system-deps installs it)")
    with start_local_broker(prefer="mosquitto") as b:
        yield b


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory, dockerd: str, node_image: str,
               broker: LocalBroker) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("rt") / "fleet.yaml"
    env = {**node_env(), "SPLITINFER_FPS": "4", "SPLITINFER_THREADS": "1"}  # three nodes share this machine

    def device(device_id: str, role: str) -> dict:
        d = {"id": device_id, "role": role, "docker": dockerd, "env": env, "volumes": node_mounts()}
        if role == "head":
            d["source"] = "synthetic:100000"
        return d

    fleet = {
        "fleet": FLEET,
        "broker": {"url": broker.url},
        "model": {"path": "yolov8n.yaml", "imgsz": 128},
        "defaults": {"cut": "b", "bits": 4},
        "images": {"head": node_image, "tail": node_image},
        "devices": [device("head-1", "head"), device("tail-1", "tail"), device("head-2", "head")],
    }
    path.write_text(json.dumps(fleet, indent=2))
    yield path
    with Engine.connect(dockerd) as engine:
        for state in engine.containers({"splitinfer.fleet": FLEET}):
            engine.remove(state.id)


@pytest.fixture(scope="module")
def coordinator(fleet_file: Path) -> Iterator[subprocess.Popen]:
    log = fleet_file.parent / "coordinator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "splitinfer", "coordinator", "-f", str(fleet_file)],
                                stdout=out, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def detections(broker: LocalBroker) -> Iterator[MqttClient]:
    client = MqttClient(BrokerConfig.from_url(broker.url, client_id="rt-test-operator"))
    client.connect(timeout=5)
    yield client
    client.close()


def _ids(dockerd: str) -> Dict[str, str]:
    with Engine.connect(dockerd) as engine:
        return {s.labels["splitinfer.device"]: s.id for s in engine.containers({"splitinfer.fleet": FLEET})}


def _wait_for(client: MqttClient, predicate, timeout: float) -> dict:  # type: ignore[no-untyped-def]
    sub = client.subscribe(Topics(FLEET).all_detections(), maxsize=10000)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = sub.get(timeout=0.5)
            if msg is not None and predicate(json.loads(msg.payload)):
                return json.loads(msg.payload)
        raise AssertionError(f"no matching detections within {timeout} s")
    finally:
        sub.close()


def test_deployed_fleet_runs_split_inference_and_reassigns_live(
    fleet_file: Path, dockerd: str, coordinator: subprocess.Popen, detections: MqttClient
) -> None:
    result = runner.invoke(app, ["deploy", "--json", "-f", str(fleet_file), "--grace", "2", "--ready-timeout", "120"])
    assert result.exit_code == 0, result.output
    devices = {d["device"]: d for d in json.loads(result.stdout)["devices"]}
    assert [d for d in devices] == ["tail-1", "head-1", "head-2"]  # tails first
    assert all(d["status"] == "created" for d in devices.values())
    assert devices["head-1"]["assignment_status"] == "published to the coordinator"

    for head in ("head-1", "head-2"):
        record = _wait_for(detections, lambda r, h=head: r["head"] == h, timeout=120)
        assert record["tail"] == "tail-1" and record["cut"] == 10  # yolov8n's preset b

    status = runner.invoke(app, ["status", "--json", "-f", str(fleet_file)])
    assert status.exit_code == 0, status.output
    rows = {r["id"]: r for r in json.loads(status.stdout)["devices"]}
    for row in rows.values():
        assert row["state"] == "running" and row["mqtt"]["state"] == "online", row
    assert rows["head-1"]["mqtt"]["route"] == "tail-1" and rows["head-1"]["mqtt"]["cut"] == "10"
    assert rows["head-1"]["mqtt"]["measured_ms"] > 0  # end to end, as the tail measured it for this head
    assert rows["tail-1"]["mqtt"]["fps"] > 0

    logs = runner.invoke(app, ["logs", "head-1", "--tail", "50", "--file", str(fleet_file)])
    assert logs.exit_code == 0 and "assignment" in logs.stdout

    before = _ids(dockerd)
    again = runner.invoke(app, ["deploy", "--json", "-f", str(fleet_file), "--grace", "1"])
    assert again.exit_code == 0, again.output
    assert {d["status"] for d in json.loads(again.stdout)["devices"]} == {"kept"}
    assert _ids(dockerd) == before

    recut = runner.invoke(app, ["deploy", "--json", "-f", str(fleet_file), "--cut", "c", "--grace", "1"])
    assert recut.exit_code == 0, recut.output
    assert _ids(dockerd) == before  # reassigned over MQTT, nothing recreated
    for head in ("head-1", "head-2"):
        _wait_for(detections, lambda r, h=head: r["head"] == h and r["cut"] == 16, timeout=60)
    assert coordinator.poll() is None
