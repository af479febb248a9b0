"""Link measurement against a real broker, and the change threshold."""

from __future__ import annotations

from typing import Any

import pytest

from splitinfer.broker.topics import Topics
from splitinfer.node.link import device_info, link_changed, measure_link


def test_link_changes_beyond_the_fraction_count() -> None:
    assert link_changed(None, {"bandwidth_bps": 1e6}, 0.25)
    assert not link_changed({"bandwidth_bps": 1e6}, {"bandwidth_bps": 1.2e6}, 0.25)
    assert link_changed({"bandwidth_bps": 1e6}, {"bandwidth_bps": 0.7e6}, 0.25)


def test_device_info_names_the_torch_device_the_node_runs_on() -> None:
    info = device_info("cam-1", "head", device="cpu")
    assert info.device == "cpu" and info.role == "head" and info.torch and info.python
    assert b'"device": "cpu"' in info.to_json()


@pytest.mark.mosquitto
def test_measure_link_times_acknowledged_publishes(mosquitto_broker: Any, make_client: Any) -> None:
    client = make_client(mosquitto_broker.url)
    link = measure_link(client, Topics("t").probe("cam-1"), max_bytes=256 * 1024, target_ms=5.0)
    assert link["rtt_ms"] > 0 and link["bandwidth_bps"] > 1e6 and 16 * 1024 <= link["probe_bytes"] <= 256 * 1024
