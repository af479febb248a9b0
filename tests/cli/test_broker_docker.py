"""`splitctl broker up --docker`: the fleet's Mosquitto as a container on a Docker engine, configured through
the Engine API (no bind mount of local files, so it works on remote engines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import free_port
from splitinfer.cli.app import app
from splitinfer.deploy import Engine
from splitinfer.deploy.live import broker_config
from splitinfer.errors import TransportError
from splitinfer.fleet import FleetStore
from tests.docker_host import node_mounts

pytestmark = [pytest.mark.docker, pytest.mark.mosquitto]

runner = CliRunner()


def test_broker_runs_as_a_container_with_the_fleet_acl(tmp_path: Path, dockerd: str, node_image: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SECRET", "s3cret-fleet-secret-1")
    port = free_port()
    path = tmp_path / "fleet.yaml"
    path.write_text(json.dumps({
        "fleet": "brk", "broker": {"url": f"mqtt://127.0.0.1:{port}", "password_env": "FLEET_SECRET"},
        "devices": [{"id": "cam-1", "role": "head", "docker": dockerd, "source": "0"}],
    }))
    # the test image has no Mosquitto of its own: it runs this machine's, mounted read-only
    args = ["broker", "up", "-f", str(path), "--docker", dockerd, "--image", node_image, "--user", "root"]
    for mount in node_mounts():
        args += ["--volume", mount]
    try:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        fleet = FleetStore.open(path).fleet
        operator = MqttClient(broker_config(fleet, "op"))
        operator.connect(timeout=10)
        sub = operator.subscribe("splitinfer/brk/#")
        operator.publish("splitinfer/brk/devices/cam-1/assign", b"{}", qos=1, timeout=5)
        assert sub.get(timeout=5) is not None
        operator.close()
        with pytest.raises(TransportError):
            MqttClient(BrokerConfig.from_url(fleet.broker.url)).connect(timeout=2)  # anonymous is refused
        again = runner.invoke(app, args)  # replaces the running one
        assert again.exit_code == 0, again.output
    finally:
        with Engine.connect(dockerd) as engine:
            engine.remove("splitinfer-brk-broker")
