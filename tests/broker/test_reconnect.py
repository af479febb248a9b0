"""A broker restart: clients reconnect and re-subscribe by themselves, and messages flow again."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from splitinfer.broker.client import MqttClient, Subscription
from splitinfer.broker.local import find_mosquitto, start_local_broker

pytestmark = pytest.mark.mosquitto


def test_broker_restart_is_invisible_to_the_caller(make_client: Callable[..., MqttClient]) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = start_local_broker(prefer="mosquitto")
    try:
        listener = make_client(broker.url, reconnect_min_delay=0.2, reconnect_max_delay=1.0, state_topic="t/state")
        talker = make_client(broker.url, reconnect_min_delay=0.2, reconnect_max_delay=1.0)
        sub = listener.subscribe("t/data", qos=1)
        listener.announce("t/info", b'{"role": "head"}')
        states = talker.subscribe("t/state", qos=1)
        assert states.get(timeout=5).payload == b"online"  # type: ignore[union-attr]

        broker.stop()  # no persistence: the broker forgets every subscription and retained message
        assert not listener.wait_connected(0) or _wait_disconnected(listener)
        stopped = time.monotonic()
        broker = start_local_broker(port=broker.port, prefer="mosquitto")

        assert listener.wait_connected(10) and talker.wait_connected(10)
        reconnect_s = time.monotonic() - stopped
        print(f"reconnected {reconnect_s:.2f} s after the broker went away")
        assert reconnect_s < 5
        # re-subscribed on reconnect and re-published "online" (retained) without being asked; Mosquitto may
        # have sent the listener's will ("offline") as it shut down, before that
        seen = _states(states)
        assert seen[-1] == b"online" and set(seen) <= {b"offline", b"online"}
        deadline = time.monotonic() + 5
        msg = None
        while msg is None and time.monotonic() < deadline:  # the listener's SUBACK may still be in flight
            talker.publish("t/data", b"after restart", qos=1)
            msg = sub.get(timeout=0.2)
        assert msg is not None and msg.payload == b"after restart"
        info = talker.subscribe("t/info", qos=1).get(timeout=5)  # retained again, though the broker forgot it
        assert info is not None and info.retain and info.payload == b'{"role": "head"}'
        assert listener.counters()["reconnects"] == 1 and listener.counters()["disconnects"] == 1
    finally:
        broker.stop()


def _states(sub: Subscription) -> list:
    seen = []
    while not seen or seen[-1] != b"online":
        msg = sub.get(timeout=5)
        if msg is None:
            break
        seen.append(msg.payload)
    return seen


def _wait_disconnected(client: MqttClient, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    return not client.connected
