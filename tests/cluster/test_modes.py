"""The whole offload spectrum with real processes on a real Mosquitto: local and offload run as modes, and a head
whose only tail dies keeps detecting (local) with no gap over 5 s, then splits again once a tail is back."""

from __future__ import annotations

import time
from typing import List

import pytest

from .harness import Cluster

pytestmark = [pytest.mark.mosquitto, pytest.mark.model, pytest.mark.slow]

MODEL, IMGSZ = "yolov8n.yaml", "128"


def test_local_mode_publishes_the_heads_own_detections(cluster: Cluster) -> None:
    cluster.coordinator(MODEL, "--imgsz", IMGSZ, "--cut", "local")
    cluster.head("cam-1", "synthetic:100000", "--fps", "5")  # no tail at all: local needs none
    records = cluster.wait_detections(3, timeout=120)
    assert all(r["mode"] == "local" and r["head"] == "cam-1" and r["tail"] is None for r in records)


def test_offload_runs_only_where_the_operator_allowed_it(cluster: Cluster) -> None:
    cluster.coordinator(MODEL, "--imgsz", IMGSZ, "--cut", "offload", "--offload", "cam-1", "--image", "jpeg:85")
    cluster.tail("tail-1")
    cluster.head("cam-1", "synthetic:100000", "--fps", "5", "--allow-offload")
    cluster.head("cam-2", "synthetic:100000", "--fps", "5", "--allow-offload")  # allowed here, not by the fleet
    records = cluster.wait_detections(8, timeout=120, where=lambda r: r["tail"] == "tail-1")
    modes = {r["head"]: r["mode"] for r in records}
    assert modes.get("cam-1") == "offload"
    assert modes.get("cam-2", "split") == "split"  # the coordinator split it instead, and said why
    sizes = [r["payload_bytes"] for r in records if r["head"] == "cam-1"]
    assert all(0 < size < 40_000 for size in sizes)


def test_a_head_refuses_offload_its_operator_did_not_allow(cluster: Cluster) -> None:
    cluster.coordinator(MODEL, "--imgsz", IMGSZ, "--cut", "offload", "--offload", "cam-1")
    cluster.tail("tail-1")
    cluster.head("cam-1", "synthetic:100000", "--fps", "5")  # the fleet allows it; this device does not
    metrics = cluster.metrics("cam-1", timeout=60, where=lambda m: m.get("bad_assignments", 0) >= 1)
    assert "not allowed on this head" in metrics["assignment_error"]
    assert not any(r.get("mode") == "offload" for r in cluster.wait_detections(0, timeout=1))


def gaps(times: List[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def test_the_only_tail_dies_the_head_goes_local_and_splits_again_when_a_tail_is_back(cluster: Cluster) -> None:
    cluster.coordinator(MODEL, "--imgsz", IMGSZ, "--cut", "b")
    cluster.tail("tail-1")
    cluster.head("cam-1", "synthetic:100000", "--fps", "5")
    cluster.wait_detections(3, timeout=120, where=lambda r: r["mode"] == "split")
    cluster.kill("tail-1")
    killed = time.time()
    arrivals: List[float] = []
    records = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for r in cluster.wait_detections(1, timeout=10):
            arrivals.append(time.time())
            records.append(r)
    local = [r for r in records if r["mode"] == "local"]
    assert local, "no local detections after the tail died"
    gap = gaps([killed, *arrivals])
    print(f"\nfigure: the only tail killed → longest gap in detections {gap:.1f} s")
    assert gap < 5.0
    cluster.states["tail-1"] = "offline"
    cluster.start("tail-1", "node", "tail", "--id", "tail-1", "--model-dir", cluster.model_dir)
    cluster.wait_online("tail-1")
    cluster.metrics("tail-1", timeout=60, where=lambda m: m.get("ready") is True)  # back: its model is loaded
    back = time.monotonic()
    cluster.wait_detections(1, timeout=30, where=lambda r: r["mode"] == "split")
    print(f"figure: a tail back (serving) → split again after {time.monotonic() - back:.1f} s")
    assert time.monotonic() - back < 10.0
