"""`splitctl broker config|up` from fleet.yaml: a real Mosquitto that admits each device with the credentials
deploy gives its container, keeps it to its own topics, and refuses anonymous clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from typer.testing import CliRunner

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import child_env, find_mosquitto, free_port
from splitinfer.cli.app import app
from splitinfer.deploy import plan_targets
from splitinfer.deploy.live import broker_config
from splitinfer.errors import TransportError
from splitinfer.fleet import FleetStore

runner = CliRunner()
SECRET = {"FLEET_SECRET": "correct horse battery staple"}


def write_fleet(folder: Path, port: int) -> Path:
    path = folder / "fleet.yaml"
    path.write_text(json.dumps({
        "fleet": "acl", "broker": {"url": f"mqtt://127.0.0.1:{port}", "password_env": "FLEET_SECRET"},
        "devices": [{"id": "cam-1", "role": "head", "docker": "unix:///nowhere.sock", "source": "0"},
                    {"id": "cam-2", "role": "head", "docker": "unix:///nowhere.sock", "source": "0"},
                    {"id": "tail-1", "role": "tail", "docker": "unix:///nowhere.sock"}],
    }))
    return path


def test_broker_config_writes_three_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SECRET", SECRET["FLEET_SECRET"])
    fleet = write_fleet(tmp_path, 1883)
    result = runner.invoke(app, ["broker", "config", "-f", str(fleet), "--out", str(tmp_path / "broker")])
    assert result.exit_code == 0, result.output
    conf = (tmp_path / "broker" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 1883\n" in conf
    bound = runner.invoke(app, ["broker", "config", "-f", str(fleet), "--out", str(tmp_path / "b2"), "--bind",
                                "10.0.0.2"])
    assert bound.exit_code == 0 and "listeners on 10.0.0.2, port 1883 (devices)" in bound.stderr
    assert "listener 1883 10.0.0.2\n" in (tmp_path / "b2" / "mosquitto.conf").read_text()
    acl = (tmp_path / "broker" / "acl").read_text()
    assert "user cam-1" in acl and "topic write splitinfer/acl/features/+/cam-1" in acl
    assert "topic write splitinfer/acl/coordinator/policy" in acl
    passwd = (tmp_path / "broker" / "passwd").read_text()
    assert SECRET["FLEET_SECRET"] not in passwd and passwd.count("$7$") == 3  # the 3 devices
    assert (tmp_path / "broker" / "passwd-operators").read_text().startswith("coordinator:$7$")
    assert "use_username_as_clientid true" in conf and "listener 1884" in conf
    assert (tmp_path / "broker" / "passwd").stat().st_mode & 0o077 == 0


def test_broker_config_needs_a_secret(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(json.dumps({"fleet": "x", "broker": {"url": "mqtt://127.0.0.1:1883"}, "devices": []}))
    result = runner.invoke(app, ["broker", "config", "-f", str(fleet), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "password_env" in result.output


@pytest.fixture
def broker_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/system-deps installs it)")
    monkeypatch.setenv("FLEET_SECRET", SECRET["FLEET_SECRET"])
    port = free_port()
    fleet = write_fleet(tmp_path, port)
    log = open(tmp_path / "broker.log", "wb")  # noqa: SIM115  (closed below, after the process)
    workdir = Path(tempfile.mkdtemp(prefix="si-broker-", dir="/tmp"))  # as root, Mosquitto runs as another user
    workdir.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "splitinfer", "broker", "up", "-f", str(fleet),
                             "--workdir", str(workdir / "run"), "--bind", "127.0.0.1"], stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**child_env(), **SECRET})  # this checkout's splitinfer
    (tmp_path / "run").symlink_to(workdir / "run")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        import socket

        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield fleet
    proc.terminate()
    proc.wait(10)
    log.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.mosquitto
def test_broker_up_binds_the_address_it_is_given(broker_up: Path) -> None:
    port = int(FleetStore.open(broker_up).fleet.broker.url.rsplit(":", 1)[1])
    assert f"listener {port} 127.0.0.1\n" in (broker_up.parent / "run" / "mosquitto.conf").read_text()
    assert f"mosquitto on 127.0.0.1, port {port} (devices)" in (broker_up.parent / "broker.log").read_text()


@pytest.mark.mosquitto
def test_devices_reach_only_their_own_topics(broker_up: Path) -> None:
    fleet = FleetStore.open(broker_up).fleet
    env = {t.device.id: t.spec.env for t in plan_targets(fleet, environ=SECRET)}
    clients: List[MqttClient] = []

    def device_client(device_id: str) -> MqttClient:
        e = env[device_id]
        client = MqttClient(BrokerConfig.from_url(e["SPLITINFER_BROKER_URL"], username=e["SPLITINFER_MQTT_USERNAME"],
                                                  password=e["SPLITINFER_MQTT_PASSWORD"], client_id=device_id))
        clients.append(client)
        client.connect(timeout=5)
        return client

    operator = MqttClient(broker_config(fleet, "operator"))
    clients.append(operator)
    try:
        seen = operator.subscribe("splitinfer/acl/#", maxsize=100)
        operator.connect(timeout=5)
        cam1 = device_client("cam-1")
        cam1.publish("splitinfer/acl/devices/cam-1/info", b"mine", qos=1, timeout=5)
        cam1.publish("splitinfer/acl/devices/cam-2/info", b"forged", qos=1, timeout=5)
        cam1.publish("splitinfer/acl/features/tail-1/cam-1", b"features", qos=1, timeout=5)
        cam1.publish("splitinfer/acl/detections/cam-2", b"forged detections", qos=1, timeout=5)
        tail = device_client("tail-1")
        tail.publish("splitinfer/acl/detections/cam-1", b"boxes", qos=1, timeout=5)
        operator.publish("splitinfer/acl/coordinator/policy", b"{}", qos=1, timeout=5)
        time.sleep(0.5)
        got = {(m.topic, m.payload) for m in seen.drain()}
        assert ("splitinfer/acl/devices/cam-1/info", b"mine") in got
        assert ("splitinfer/acl/features/tail-1/cam-1", b"features") in got
        assert ("splitinfer/acl/detections/cam-1", b"boxes") in got
        assert ("splitinfer/acl/coordinator/policy", b"{}") in got
        assert not any(payload.startswith(b"forged") for _, payload in got)
        with pytest.raises(TransportError):
            MqttClient(BrokerConfig.from_url(env["cam-1"]["SPLITINFER_BROKER_URL"])).connect(timeout=2)
    finally:
        for client in clients:
            client.close(timeout=0.5)
