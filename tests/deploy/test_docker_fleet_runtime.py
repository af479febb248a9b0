"""A real fleet on the documented no-registry route: `splitctl image build` makes the node image, two heads and a
tail deployed as containers running `splitctl node`, a real Mosquitto, and the coordinator following fleet.yaml.
Detections flow; status shows the live view; deploy --cut reassigns live; `splitctl down` leaves no container.

Waits are on progress, not fixed times: a wait goes on while the fleet moves (detections, or a node's counters,
assignment or info changing) and fails after STALL seconds without, or at once when a container stops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest
from typer.testing import CliRunner

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, child_env, find_mosquitto, start_local_broker
from splitinfer.broker.topics import Topics
from splitinfer.cli.app import app
from splitinfer.deploy import Engine

pytestmark = [pytest.mark.docker, pytest.mark.mosquitto, pytest.mark.model, pytest.mark.slow]

runner = CliRunner()
FLEET = "rt"
STALL = 90.0  # seconds without a step towards the detection waited for
CAP = 600.0  # seconds for any one wait, however it progresses


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/system-deps installs it)")
    with start_local_broker(prefer="mosquitto") as b:
        yield b


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory, dockerd: str, broker: LocalBroker) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("rt") / "fleet.yaml"
    built = {}
    for role in ("head", "tail"):  # the documented route: what it prints is what fleet.yaml gets
        result = runner.invoke(app, ["image", "build", role, "--docker", dockerd, "--tag", f"rt-{role}:host",
                                     "--json"])
        assert result.exit_code == 0, result.output
        built[role] = json.loads(result.stdout)

    def device(device_id: str, role: str) -> dict:
        # the image carries PATH and PYTHONPATH itself: fleet.yaml needs only its volumes
        d = {"id": device_id, "role": role, "docker": dockerd, "volumes": built[role]["volumes"],
             "env": {"SPLITINFER_FPS": "4", "SPLITINFER_THREADS": "1"}}  # three nodes share this machine
        if role == "head":
            d["source"] = "synthetic:100000"
        return d

    fleet = {
        "fleet": FLEET,
        "broker": {"url": broker.url},
        "model": {"path": "yolov8n.yaml", "imgsz": 128},
        "defaults": {"cut": "b", "bits": 4},
        "images": {"head": built["head"]["image"], "tail": built["tail"]["image"]},
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
                                stdout=out, stderr=subprocess.STDOUT, env=child_env())  # this checkout's
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


def _progress_mark(kind: str, device: str, data: Any) -> Tuple[Any, ...]:
    """A step on the way to detections: a new state, info (profiles arrive there) or assignment, a node whose
    metrics show a new generation or cut, or that it has started sending or processing frames. Frames flowing on
    do not count (they would never stop)."""
    if kind != "metrics" or not isinstance(data, dict):
        return (kind, device, json.dumps(data, sort_keys=True))
    return (kind, device, data.get("generation"), data.get("cut"), bool(data.get("frames_sent")),
            bool(data.get("frames")))


def _wait_for(client: MqttClient, dockerd: str, predicate: Callable[[dict], bool]) -> dict:
    """The first detection record matching ``predicate``, waiting while the fleet makes progress (up to CAP)."""
    topics = Topics(FLEET)
    subs = {kind: client.subscribe(topics.all_devices(kind), maxsize=10000)
            for kind in ("state", "info", "assign", "metrics")}
    detections = client.subscribe(topics.all_detections(), maxsize=10000)
    seen = set()
    started = progressed = next_check = time.monotonic()
    try:
        while time.monotonic() - progressed < STALL and time.monotonic() - started < CAP:
            msg = detections.get(timeout=0.5)
            if msg is not None:
                record = json.loads(msg.payload)
                if predicate(record):
                    return record
                mark: Tuple[Any, ...] = ("detections", record["head"], record["cut"])
                if mark not in seen:
                    seen.add(mark)
                    progressed = time.monotonic()
            for kind, sub in subs.items():
                for item in sub.drain():
                    payload = item.payload.decode() if kind == "state" else json.loads(item.payload or b"null")
                    mark = _progress_mark(kind, topics.parse(item.topic).device, payload)
                    if mark not in seen:
                        seen.add(mark)
                        progressed = time.monotonic()
            if time.monotonic() >= next_check:
                _assert_running(dockerd)
                next_check = time.monotonic() + 5
        waited = time.monotonic() - started
        raise AssertionError(f"no matching detection after {waited:.0f} s (the last {STALL:.0f} s without progress, "
                             f"or the {CAP:.0f} s cap)")
    finally:
        for sub in (*subs.values(), detections):
            sub.close()


def _assert_running(dockerd: str) -> None:
    with Engine.connect(dockerd) as engine:
        for state in engine.containers({"splitinfer.fleet": FLEET}):
            assert state.running, f"{state.name} is {state.status}:\n{engine.last_lines(state.id)}"


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
        record = _wait_for(detections, dockerd, lambda r, h=head: r["head"] == h)
        assert record["tail"] == "tail-1" and record["cut"] == 10  # yolov8n's preset b

    status = runner.invoke(app, ["status", "--json", "-f", str(fleet_file)])
    assert status.exit_code == 0, status.output
    rows = {r["id"]: r for r in json.loads(status.stdout)["devices"]}
    for row in rows.values():
        assert row["state"] == "running" and row["mqtt"]["state"] == "online", row
    assert rows["head-1"]["mqtt"]["route"] == "tail-1" and rows["head-1"]["mqtt"]["cut"] == "10"
    assert rows["head-1"]["mqtt"]["measured_ms"] > 0  # end to end, as the tail measured it for this head
    assert rows["tail-1"]["mqtt"]["fps"] > 0
    table = runner.invoke(app, ["status", "-f", str(fleet_file)], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout
    for device, cut in (("head-1", "10"), ("head-2", "10"), ("tail-1", "—")):
        fields = next(line for line in table.stdout.splitlines() if line.startswith(device)).split()
        assert fields[2:4] == ["running", cut] and fields[-1] in ("ok", "dropping"), table.stdout  # heads on a busy
        # 2-core machine drop frames at capture (SPLITINFER_FPS 4), and health says so
        assert float(fields[4]) > 0 and float(fields[5]) > 0  # fps, p50 ms

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
        _wait_for(detections, dockerd, lambda r, h=head: r["head"] == h and r["cut"] == 16)
    assert coordinator.poll() is None

    down = runner.invoke(app, ["down", "--json", "-f", str(fleet_file), "--stop-timeout", "5"])
    assert down.exit_code == 0, down.output
    removed = {d["device"]: d["removed"] for d in json.loads(down.stdout)["devices"]}
    assert removed == {d: [f"splitinfer-{d}"] for d in ("head-1", "head-2", "tail-1")}
    assert _ids(dockerd) == {}  # no container left behind
    with Engine.connect(dockerd) as engine:
        assert engine.image_id("rt-head:host") and engine.image_id("rt-tail:host")  # images are kept
