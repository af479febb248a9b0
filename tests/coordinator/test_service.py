"""The coordinator's registry against what devices send: nothing a device publishes stops it, roles come from the
inventory, silent tails expire, and a restarted coordinator's assignments win. No broker needed: messages are fed
to it as they would arrive."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from splitinfer.broker.client import Message
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment, Policy
from splitinfer.broker.topics import Topics
from splitinfer.coordinator.planner import DeviceState, plan
from splitinfer.coordinator.service import Coordinator

TOPICS = Topics("t")


def msg(topic: str, payload: Any, *, wall: float = 0.0) -> Message:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(topic, data, 1, True, time.monotonic(), wall or time.time())


@pytest.fixture
def coordinator() -> Any:
    c = Coordinator(BrokerConfig("mqtt://127.0.0.1:1"), TOPICS, Policy(model="m.yaml"))
    yield c
    c.mqtt.close(timeout=0.1)


HOSTILE_INFO = [
    b"\xff\xfe",
    b"[" * 50_000 + b"]" * 50_000,
    json.dumps({"id": "cam-1", "role": "head", "profile": {"link": {"bandwidth_bps": "fast"}}}).encode(),
    json.dumps({"id": "cam-1", "role": "head", "profile": {"layer_ms": ["x"]}}).encode(),
    json.dumps({"id": "someone-else", "role": "tail"}).encode(),
    json.dumps({"id": "cam-1", "role": "head", "memory_mb": 1e400}).replace("Infinity", "1e400").encode(),
    json.dumps({"id": "cam-1", "role": "root"}).encode(),
    json.dumps([1, 2, 3]).encode(),
]


@pytest.mark.parametrize("payload", HOSTILE_INFO)
def test_a_hostile_retained_info_is_counted_and_skipped(coordinator: Coordinator, payload: bytes) -> None:
    assert coordinator._absorb(msg(TOPICS.info("cam-1"), payload)) is False
    assert coordinator.bad_messages == 1 and "cam-1" not in coordinator.devices


@pytest.mark.parametrize("payload", [b"{", json.dumps({"time": "now", "ready": "yes"}).encode(), b"[]"])
def test_hostile_metrics_never_raise(coordinator: Coordinator, payload: bytes) -> None:
    coordinator._absorb(msg(TOPICS.info("tail-1"), {"id": "tail-1", "role": "tail"}))
    coordinator._absorb(msg(TOPICS.metrics("tail-1"), payload))  # no exception is the test


def test_roles_come_from_the_inventory_not_from_the_device(coordinator: Coordinator) -> None:
    coordinator.policy = Policy(model="m.yaml", roles={"cam-1": "head", "cam-2": "head", "tail-1": "tail"})
    for device, role in (("cam-1", "head"), ("cam-2", "tail"), ("tail-1", "tail"), ("stranger", "tail")):
        coordinator._absorb(msg(TOPICS.info(device), {"id": device, "role": role}))
    assert {d: s.role for d, s in coordinator.devices.items()} == {"cam-1": "head", "cam-2": "head",
                                                                     "tail-1": "tail"}
    routes = plan(coordinator.devices, coordinator.policy, {})
    assert routes["cam-1"].route == routes["cam-2"].route == "tail-1"


def test_without_an_inventory_devices_claims_are_taken(coordinator: Coordinator) -> None:
    coordinator._absorb(msg(TOPICS.info("cam-2"), {"id": "cam-2", "role": "tail"}))
    assert coordinator.devices["cam-2"].role == "tail"


def test_a_tail_whose_metrics_stop_is_taken_offline(coordinator: Coordinator) -> None:
    coordinator.stale_after = 0.2
    coordinator._absorb(msg(TOPICS.info("tail-1"), {"id": "tail-1", "role": "tail"}))
    coordinator._absorb(msg(TOPICS.state("tail-1"), b"online"))
    assert not coordinator._expire_silent_tails()
    time.sleep(0.3)
    assert coordinator._expire_silent_tails() and not coordinator.devices["tail-1"].online
    coordinator._absorb(msg(TOPICS.state("tail-1"), b"online"))  # it says online again (reconnected)
    assert coordinator.devices["tail-1"].online


def test_a_tail_is_planned_only_once_it_says_it_serves(coordinator: Coordinator) -> None:
    coordinator._absorb(msg(TOPICS.info("tail-1"), {"id": "tail-1", "role": "tail"}))
    coordinator._absorb(msg(TOPICS.info("cam-1"), {"id": "cam-1", "role": "head"}))
    coordinator._absorb(msg(TOPICS.metrics("tail-1"), {"role": "tail", "ready": False, "time": time.time()}))
    assigned = plan(coordinator.devices, coordinator.policy, {}, unready=coordinator._unready())
    assert assigned["cam-1"].route == "" and "tail-1" in assigned  # the tail gets its model, no heads yet
    assert coordinator._absorb(msg(TOPICS.metrics("tail-1"), {"ready": True, "time": time.time()}))
    assigned = plan(coordinator.devices, coordinator.policy, {}, unready=coordinator._unready())
    assert assigned["cam-1"].route == "tail-1"


def test_a_skewed_clock_is_measured(coordinator: Coordinator) -> None:
    coordinator._absorb(msg(TOPICS.info("cam-1"), {"id": "cam-1", "role": "head"}))
    coordinator._absorb(msg(TOPICS.metrics("cam-1"), {"time": time.time() + 300.0}))
    assert coordinator.clock_offset["cam-1"] == pytest.approx(-300.0, abs=1.0)


def test_a_restarted_coordinator_issues_everything_again_in_its_epoch() -> None:
    devices = {"cam-1": DeviceState("cam-1", "head", True), "tail-1": DeviceState("tail-1", "tail", True)}
    policy = Policy(model="m.yaml")
    first = plan(devices, policy, {}, epoch=100.0)
    stale = {d: Assignment(**{**a.__dict__, "generation": 1}) for d, a in first.items()}  # older than nodes hold
    second = plan(devices, policy, stale, epoch=200.0)
    assert all(a.epoch == 200.0 and a.newer_than(Assignment(generation=9, model="m.yaml", epoch=100.0))
               for a in second.values())
    assert plan(devices, policy, second, epoch=200.0) == second  # and is stable within its epoch
