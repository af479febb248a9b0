"""mqtts:// against a real Mosquitto with the rendered TLS listener (certificates made with openssl)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, find_mosquitto, free_port, run_mosquitto
from splitinfer.broker.mosquitto_conf import render_mosquitto_files
from splitinfer.errors import TransportError

pytestmark = pytest.mark.mosquitto


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(tmp: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=tmp)  # fmt: skip
    (tmp / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", "ext", "-out", "server.pem", cwd=tmp)  # fmt: skip


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[LocalBroker, str]]:
    if find_mosquitto() is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    tmp = tmp_path_factory.mktemp("tls")
    _make_certs(tmp)
    port, operator_port = free_port(), free_port()
    files = render_mosquitto_files(
        "f",
        [("jetson-01", "head")],
        {"jetson-01": "pw", "coordinator": "pw-c"},
        port=None,
        tls_port=port,
        operator_port=operator_port,
        bind_address="127.0.0.1",
        cafile=str(tmp / "ca.pem"),
        certfile=str(tmp / "server.pem"),
        keyfile=str(tmp / "server.key"),
        config_dir=str(tmp),
        data_dir=None,
        run_as_user="root" if os.geteuid() == 0 else None,
        hasher="python",
    )
    broker = run_mosquitto(str(files.write(str(tmp))["mosquitto.conf"]), port)
    broker.operator_port = operator_port  # type: ignore[attr-defined]
    yield broker, str(tmp / "ca.pem")
    broker.stop()


def test_mqtts_round_trip_with_the_fleet_ca(tls_broker: Tuple[LocalBroker, str]) -> None:
    broker, ca_file = tls_broker
    url = f"mqtts://127.0.0.1:{broker.port}"
    config = BrokerConfig(url, username="jetson-01", password="pw", ca_file=ca_file)
    with MqttClient(config) as client:
        sub = client.subscribe("splitinfer/f/devices/jetson-01/assign", qos=1)
        operators = f"mqtts://127.0.0.1:{broker.operator_port}"  # type: ignore[attr-defined]
        with MqttClient(BrokerConfig(operators, username="coordinator", password="pw-c", ca_file=ca_file)) as op:
            op.publish("splitinfer/f/devices/jetson-01/assign", b"{}", qos=1)
            msg = sub.get(timeout=5)
    assert msg is not None and msg.payload == b"{}"


def test_unknown_ca_fails_the_handshake(tls_broker: Tuple[LocalBroker, str]) -> None:
    client = MqttClient(BrokerConfig(f"mqtts://127.0.0.1:{tls_broker[0].port}", username="jetson-01", password="pw"))
    with pytest.raises(TransportError, match=r"TLS handshake .* failed: .*CERTIFICATE_VERIFY_FAILED"):
        client.connect(timeout=3)
    client.close()


def test_plain_mqtt_on_a_tls_port_says_so(tls_broker: Tuple[LocalBroker, str]) -> None:
    client = MqttClient(BrokerConfig(f"mqtt://127.0.0.1:{tls_broker[0].port}", username="jetson-01", password="pw"))
    with pytest.raises(TransportError, match="mqtts://"):
        client.connect(timeout=1)
    client.close()
