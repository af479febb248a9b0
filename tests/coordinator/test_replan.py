"""When the coordinator re-plans on a node's info: a new profile at once, a link only past replan_fraction."""

from __future__ import annotations

import json
from typing import Any, Dict

from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.topics import Topics
from splitinfer.coordinator import Policy
from splitinfer.coordinator.service import Coordinator


def info(profile: Dict[str, Any]) -> bytes:
    return json.dumps({"id": "cam", "role": "head", "profile": profile}).encode()


def test_link_changes_replan_only_past_the_fraction() -> None:
    c = Coordinator(BrokerConfig("mqtt://127.0.0.1:1"), Topics("t"), Policy(model="m"), replan_fraction=0.25)
    try:
        assert c._absorb_info("cam", info({"layer_ms": [1.0]}))  # a new device
        assert c._absorb_info("cam", info({"layer_ms": [1.0], "link": {"bandwidth_bps": 10e6}}))
        c._planned_links["cam"] = 10e6
        assert not c._absorb_info("cam", info({"layer_ms": [1.0], "link": {"bandwidth_bps": 11e6}}))
        assert c._absorb_info("cam", info({"layer_ms": [1.0], "link": {"bandwidth_bps": 5e6}}))
        assert c._absorb_info("cam", info({"layer_ms": [1.0], "head_scale": 1.5,
                                                   "link": {"bandwidth_bps": 5e6}}))  # a calibration
    finally:
        c.mqtt.close(timeout=0.1)
