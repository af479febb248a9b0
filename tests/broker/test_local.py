"""start_local_broker: Mosquitto or the embedded amqtt broker, each in its own process."""

from __future__ import annotations

import socket
from typing import Callable

import pytest

from splitinfer.broker import local
from splitinfer.broker.client import MqttClient
from splitinfer.broker.local import find_mosquitto, local_mosquitto_conf, start_local_broker
from splitinfer.errors import TransportError


def test_embedded_broker_round_trip(make_client: Callable[..., MqttClient]) -> None:
    if not local.embedded_available():
        pytest.skip("amqtt needs Python >= 3.10 and must be installed")
    with start_local_broker(prefer="embedded") as broker:
        assert broker.kind == "embedded" and broker.running
        node = make_client(broker.url, state_topic="f/devices/j1/state")
        observer = make_client(broker.url)
        frames = observer.subscribe("f/features/+/j1", qos=1)
        state = observer.subscribe("f/devices/j1/state", qos=1).get(timeout=5)
        assert state is not None and state.payload == b"online" and state.retain
        payload = bytes(range(256)) * 4096  # 1 MiB: amqtt has no size limit of its own
        node.publish("f/features/t1/j1", payload, qos=1)
        msg = frames.get(timeout=10)
        assert msg is not None and msg.payload == payload
        node.close()
        observer.close()
    assert not broker.running


@pytest.mark.mosquitto
def test_mosquitto_is_preferred_and_stops_cleanly() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = start_local_broker()
    assert broker.kind == "mosquitto" and broker.url == f"mqtt://127.0.0.1:{broker.port}"
    broker.stop()
    broker.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=0.5)


def test_neither_broker_available_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "find_mosquitto", lambda: None)
    monkeypatch.setattr(local, "embedded_available", lambda: False)
    with pytest.raises(TransportError, match=r"apt install mosquitto.*splitinfer\[broker\]"):
        start_local_broker()


@pytest.mark.mosquitto
def test_a_port_in_use_is_refused_clearly() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(
            TransportError, match=r"cannot start a local broker on 127\.0\.0\.1:\d+: Address already in use"
        ):
            start_local_broker(port=taken.getsockname()[1], timeout=3)


def test_local_mosquitto_conf_allows_big_payloads_on_loopback_only() -> None:
    conf = local_mosquitto_conf(1999, max_payload=8_000_000)
    assert "listener 1999 127.0.0.1" in conf and "allow_anonymous true" in conf and "persistence false" in conf
    assert "message_size_limit 8000000" in conf


def test_prefer_must_be_known() -> None:
    with pytest.raises(TransportError, match="prefer"):
        start_local_broker(prefer="emqx")


@pytest.mark.mosquitto
def test_a_broker_that_exits_reports_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    monkeypatch.setattr(local, "_mosquitto_cmd", lambda _: [binary, "-c", "/nonexistent/mosquitto.conf"])
    with pytest.raises(TransportError, match=r"did not come up .*exited with status.*\n.*nonexistent"):
        start_local_broker(timeout=3)
