"""MqttClient against a real Mosquitto (session fixture): round trips, retained state, last will, queues, limits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from splitinfer.broker.client import Message, MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, free_port
from splitinfer.errors import TransportError

pytestmark = pytest.mark.mosquitto

MakeClient = Callable[..., MqttClient]
SRC = Path(__file__).resolve().parents[2] / "src"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic prefix of our own, so tests on the shared broker never see each other's messages."""
    return f"test/{request.node.name.replace('[', '-').replace(']', '')}/{time.monotonic_ns()}"


def test_round_trip(mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str) -> None:
    sub_client = make_client(mosquitto_broker.url)
    pub_client = make_client(mosquitto_broker.url)
    sub = sub_client.subscribe(f"{topic}/+", qos=1)
    before = (time.monotonic(), time.time())
    assert pub_client.publish(f"{topic}/a", b"\x00\x01binary", qos=1)
    msg = sub.get(timeout=5)
    assert isinstance(msg, Message)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (f"{topic}/a", b"\x00\x01binary", 1, False)
    assert msg.received_monotonic >= before[0] and abs(msg.received_wall - before[1]) < 5
    with pytest.raises(AttributeError):
        msg.payload = b"x"  # type: ignore[misc]  # frozen
    assert pub_client.counters()["published"] == 1
    assert sub_client.counters()["received"] == 1


def test_retained_message_reaches_late_subscribers(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    client = make_client(mosquitto_broker.url)
    client.publish(f"{topic}/info", '{"role": "head"}', qos=1, retain=True, timeout=5)
    late = make_client(mosquitto_broker.url)
    msg = late.subscribe(f"{topic}/info", qos=1).get(timeout=5)
    assert msg is not None and msg.retain and msg.payload == b'{"role": "head"}'


def test_state_online_then_offline_on_clean_close(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    observer = make_client(mosquitto_broker.url)
    states = observer.subscribe(f"{topic}/state", qos=1)
    node = make_client(mosquitto_broker.url, state_topic=f"{topic}/state")
    assert states.get(timeout=5).payload == b"online"  # type: ignore[union-attr]
    node.close()
    assert states.get(timeout=5).payload == b"offline"  # type: ignore[union-attr]


def test_a_failed_state_outlives_the_clean_close(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    observer = make_client(mosquitto_broker.url)
    states = observer.subscribe(f"{topic}/state", qos=1)
    node = make_client(mosquitto_broker.url, state_topic=f"{topic}/state")
    assert states.get(timeout=5).payload == b"online"  # type: ignore[union-attr]
    assert node.set_state(b"failed", timeout=5)
    assert states.get(timeout=5).payload == b"failed"  # type: ignore[union-attr]
    node.close()
    assert states.get(timeout=1) is None  # no "offline" after it
    late = make_client(mosquitto_broker.url).subscribe(f"{topic}/state", qos=1).get(timeout=5)
    assert late is not None and late.retain and late.payload == b"failed"


def test_last_will_offline_is_retained_when_a_node_dies(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    state = f"{topic}/state"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    node = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("will_client.py")), mosquitto_broker.url, state],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert node.stdout is not None and node.stdout.readline().strip() == b"ready"
        observer = make_client(mosquitto_broker.url)
        states = observer.subscribe(state, qos=1)
        first = states.get(timeout=5)
        assert first is not None and (first.payload, first.retain) == (b"online", True)
        node.send_signal(signal.SIGKILL)  # no DISCONNECT: the kernel just closes the socket
        node.wait(5)
        will = states.get(timeout=5)
        assert will is not None and will.payload == b"offline"
    finally:
        node.kill()
        node.wait()
    late = make_client(mosquitto_broker.url).subscribe(state, qos=1).get(timeout=5)
    assert late is not None and (late.payload, late.retain) == (b"offline", True)


def _flood(client: MqttClient, topic: str, count: int) -> None:
    for i in range(count):
        client.publish(topic, str(i).encode())


@pytest.mark.parametrize("drop", ["oldest", "newest"])
def test_slow_consumer_queue_stays_bounded_and_counts_drops(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str, drop: str
) -> None:
    consumer = make_client(mosquitto_broker.url)
    producer = make_client(mosquitto_broker.url, max_queued_messages=1000)
    sub = consumer.subscribe(f"{topic}/x", maxsize=10, drop=drop)
    sizes = []
    sampler = threading.Thread(target=lambda: [sizes.append(len(sub)) or time.sleep(0.001) for _ in range(200)])
    sampler.start()
    _flood(producer, f"{topic}/x", 500)
    sampler.join()
    wait_until(lambda: consumer.counters()["received"] == producer.counters()["published"])
    received = consumer.counters()["received"]
    assert received > 100  # loopback QoS 0 may lose a few, not most
    assert max(sizes) <= 10 and len(sub) == 10
    assert sub.dropped == consumer.counters()["dropped"] == received - 10
    kept = [int(m.payload) for m in sub.drain()]
    assert kept == sorted(kept)
    if drop == "oldest":
        assert kept[-1] == 499 or received < 500  # the freshest survive
    else:
        assert kept == list(range(10))  # the first ten survive


def test_publish_over_the_limit_is_refused(mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str) -> None:
    client = make_client(mosquitto_broker.url, config={"max_payload": 1000})
    assert client.publish(f"{topic}/ok", b"x" * 1000)
    with pytest.raises(TransportError, match=r"1001 bytes .* over the limit of 1000 bytes"):
        client.publish(f"{topic}/big", b"x" * 1001)
    assert client.counters()["oversize_out"] == 1


def test_received_over_the_limit_is_dropped_and_counted(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    small = make_client(mosquitto_broker.url, config={"max_payload": 1000})
    sub = small.subscribe(f"{topic}/+", qos=1)
    big = make_client(mosquitto_broker.url)
    big.publish(f"{topic}/big", b"x" * 5000, qos=1)
    big.publish(f"{topic}/small", b"fits", qos=1)
    msg = sub.get(timeout=5)
    assert msg is not None and msg.payload == b"fits"
    assert sub.get(timeout=0.2) is None
    assert small.counters()["oversize_in"] == 1 and small.counters()["received"] == 1


def test_multi_megabyte_payload(mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str) -> None:
    payload = os.urandom(6 * 1024 * 1024)
    sub = make_client(mosquitto_broker.url).subscribe(f"{topic}/f")
    make_client(mosquitto_broker.url).publish(f"{topic}/f", payload)
    msg = sub.get(timeout=10)
    assert msg is not None and msg.payload == payload


def test_subscription_made_before_connect_is_used_on_connect(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    client = make_client(mosquitto_broker.url, connect=False)
    sub = client.subscribe(f"{topic}/a", qos=1)
    assert not client.connected
    assert not client.publish(f"{topic}/a", b"lost")  # QoS 0 is not queued while disconnected
    assert client.counters()["unsent"] == 1
    with pytest.raises(TransportError, match="did not acknowledge"):
        client.publish(f"{topic}/a", b"queued", qos=1, timeout=0.1)
    client.connect(timeout=5)
    time.sleep(0.2)  # the SUBACK of the on_connect subscription
    make_client(mosquitto_broker.url).publish(f"{topic}/a", b"hello", qos=1)
    got = {m.payload for m in (sub.get(timeout=5), sub.get(timeout=5)) if m is not None}
    assert got == {b"queued", b"hello"}  # the QoS 1 message waited for the connection


def test_unsubscribed_subscription_wakes_its_consumer(
    mosquitto_broker: LocalBroker, make_client: MakeClient, topic: str
) -> None:
    client = make_client(mosquitto_broker.url)
    sub = client.subscribe(f"{topic}/a")
    threading.Timer(0.1, sub.close).start()
    assert sub.get(timeout=5) is None and sub.closed


def test_invalid_topic_and_filter(mosquitto_broker: LocalBroker, make_client: MakeClient) -> None:
    client = make_client(mosquitto_broker.url)
    with pytest.raises(TransportError, match="cannot publish"):
        client.publish("a/+/b", b"x")
    with pytest.raises(TransportError, match="whole level"):
        client.subscribe("a/b#")


def test_unreachable_broker_fails_within_the_timeout() -> None:
    client = MqttClient(BrokerConfig(f"mqtt://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    with pytest.raises(
        TransportError,
        match=r"cannot reach the MQTT broker at mqtt://127\.0\.0\.1:\d+ within 1 s: "
        r"connection refused",
    ):
        client.connect(timeout=1.0)
    assert time.monotonic() - started < 2.0
    client.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    yield server.getsockname()[1]
    server.close()


def test_server_without_connack_fails_within_the_timeout(silent_server: int) -> None:
    client = MqttClient(BrokerConfig(f"mqtt://127.0.0.1:{silent_server}"))
    started = time.monotonic()
    with pytest.raises(TransportError, match="no MQTT CONNACK in time: is it an MQTT broker"):
        client.connect(timeout=1.0)
    assert time.monotonic() - started < 2.0
    client.close()
