"""Trust nothing on the wire: every case of issue 13, replayed against live processes — Mosquitto with the rendered
fleet config (per-device users, ACL, two listeners), the coordinator from fleet.yaml, real tail and head nodes —
by an attacker holding one head's credentials (cam-2's). Nothing it publishes may stop another process, misroute
another device's frames, or run code.

One fleet serves the cases that leave it whole; the ones that kill or freeze a process make their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
import torch

import splitinfer
from splitinfer.broker.messages import Assignment, pack_features
from splitinfer.codec import CalibrationTable, Codec
from splitinfer.errors import TransportError
from splitinfer.features import FeatureSet, FrameMeta

from .secure import IMGSZ, MODEL, SecureFleet

pytestmark = [pytest.mark.mosquitto, pytest.mark.model, pytest.mark.slow]

DEVICES = {"cam-1": "head", "cam-2": "head", "tail-1": "tail", "tail-2": "tail"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureFleet]:
    """cam-1 → tail-1 serving; tail-2 idle; cam-2's credentials in the attacker's hands (no cam-2 node runs)."""
    f = SecureFleet(tmp_path_factory.mktemp("hostile"), DEVICES)
    try:
        f.coordinator()
        f.node("tail-1")
        f.node("tail-2")
        f.wait_state("tail-1", "online")
        f.wait_state("tail-2", "online")
        f.node("cam-1", "--source", "synthetic:100000", "--fps", "8")
        f.wait_detections(3, timeout=180, where=lambda r: r["head"] == "cam-1")
        yield f
    finally:
        f.close()


def cam1_keeps_being_served(f: SecureFleet, n: int = 3, timeout: float = 60.0) -> None:
    f.drain_detections()
    since = time.time()
    f.wait_detections(n, timeout, where=lambda r: r["head"] == "cam-1" and r["timestamp"] > since)
    f.alive("coordinator", "tail-1", "tail-2", "cam-1")


def _features(tensors: List[torch.Tensor], *, layers: tuple, cut: int, model: str) -> FeatureSet:
    frames = tuple(FrameMeta(source="cam-2", seq=k, timestamp=time.time(), orig_shape=(IMGSZ, IMGSZ))
                   for k in range(tensors[0].shape[0]))
    return FeatureSet(cut=cut, layers=layers, tensors=tuple(tensors), input_shape=(IMGSZ, IMGSZ), model=model,
                      frames=frames)


def hostile_blobs() -> List[bytes]:
    """Well-formed codec blobs whose tensors are not what the model's head makes at its cut."""
    model = splitinfer.load_model(MODEL)
    head, _ = splitinfer.split(model, "b")
    real = head(torch.rand(1, 3, IMGSZ, IMGSZ))
    layers, cut, fp = real.layers, real.cut, real.model
    t = list(real.tensors)
    c, h, w = t[0].shape[1:]
    cases = [
        [torch.rand(1, c + 3, h, w), *t[1:]],  # wrong channels
        [torch.rand(1, c, h, w + 1), *t[1:]],  # inconsistent spatial size
        [torch.rand(1, c, h), *t[1:]],  # a 3-D tensor
        [torch.rand(1, c, 0, 0), *t[1:]],  # 0 × 0
        [torch.rand(1, c, h * 15, w * 15), *t[1:]],  # spatial sizes × 15
        [t[0].repeat(40, 1, 1, 1), *[x.repeat(40, 1, 1, 1) for x in t[1:]]],  # a huge batch
    ]
    blobs = [Codec(bits=4).encode(_features(ts, layers=layers, cut=cut, model=fp)) for ts in cases]
    blobs.append(Codec(bits=4).encode(_features(t, layers=layers, cut=cut, model="")))  # no fingerprint
    blobs.append(Codec(bits=4).encode(_features(t, layers=layers, cut=cut, model="0" * 64)))  # another model
    nan = [x.clone() for x in t]
    nan[0][0, 0, 0, 0] = float("nan")
    blobs.append(Codec(bits=32).encode(_features(nan, layers=layers, cut=cut, model=fp)))  # NaN, passed through
    blobs.append(Codec(bits=4).encode(_features(t[:-1], layers=layers[:-1], cut=layers[-1] + 1, model=fp)))  # cut
    # the calibrated codec with a table the tail was never given (it decodes with the assigned ones only)
    table = CalibrationTable(model=fp, cut=cut, imgsz=IMGSZ, layers=layers,
                             sensitivity=[np.ones(int(x.shape[1]), np.float32) for x in t],
                             mean=[np.zeros(int(x.shape[1]), np.float32) for x in t])
    blobs.append(Codec(table=table, keyframe_interval=5).encode(_features(t, layers=layers, cut=cut, model=fp)))
    return blobs


def test_malformed_features_are_rejected_and_the_tail_serves_on(fleet: SecureFleet) -> None:
    attacker = fleet.attacker()
    topic = fleet.topics.features("tail-1", "cam-2")
    blobs = hostile_blobs()
    for blob in blobs:
        attacker.publish(topic, pack_features(blob, time.time(), {}), qos=1, timeout=5)
    for garbage in (b"", b"SIF1", os.urandom(5000), pack_features(os.urandom(3000), time.time(), {})):
        attacker.publish(topic, garbage, qos=1, timeout=5)
    counts = fleet.metrics("tail-1", where=lambda m: m["rejected"] + m["decode_errors"] >= len(blobs) + 4,
                           timeout=60)
    assert counts["errors"] == 0, "every hostile payload is a counted rejection, never an unexpected failure"
    cam1_keeps_being_served(fleet)


def test_a_hostile_retained_info_does_not_stop_the_coordinator(fleet: SecureFleet) -> None:
    attacker = fleet.attacker()
    info = fleet.topics.info("cam-2")
    for payload in (
        json.dumps({"id": "cam-2", "role": "head", "profile": {"link": {"bandwidth_bps": "fast"}}}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
        json.dumps({"id": "cam-2", "role": "head", "profile": {"layer_ms": [1e300] * 50,
                                                               "cuts": {"1": {"bytes": -1}}}}).encode(),
        json.dumps({"id": "cam-1", "role": "tail"}).encode(),  # another device's name on its own topic
    ):
        attacker.publish(info, payload, qos=1, retain=True, timeout=5)
    attacker.publish(fleet.topics.metrics("cam-2"), b'{"time": "now", "ready": []}', qos=1, timeout=5)
    time.sleep(1.5)
    cam1_keeps_being_served(fleet)


def test_a_head_claiming_to_be_a_tail_gets_no_frames_routed_to_it(fleet: SecureFleet) -> None:
    attacker = fleet.attacker()
    attacker.publish(fleet.topics.info("cam-2"), json.dumps({"id": "cam-2", "role": "tail"}).encode(), qos=1,
                     retain=True, timeout=5)
    attacker.publish(fleet.topics.state("cam-2"), b"online", qos=1, retain=True, timeout=5)
    time.sleep(1.5)
    assignment = fleet.retained(fleet.topics.assign("cam-1"))
    assert assignment["route"] in ("tail-1", "tail-2")
    cam1_keeps_being_served(fleet)


def test_no_device_can_take_over_another_session(fleet: SecureFleet) -> None:
    fleet.attacker().close(timeout=0.3)
    before = fleet.metrics("cam-1")["mqtt"]["reconnects"]
    for victim in ("secure-coordinator", "secure-cam-1", "secure-tail-1", "cam-1", "coordinator"):
        attacker = fleet.client("cam-2", client_id=victim, connect=True)  # the broker makes its client id "cam-2"
        attacker.close(timeout=0.5)
    with pytest.raises(TransportError, match="refused"):  # device credentials on the operators' listener
        fleet.client("cam-2", operator=True, client_id="secure-coordinator", connect=True)
    time.sleep(2.0)
    assert fleet.metrics("cam-1")["mqtt"]["reconnects"] == before
    coordinator_log = fleet.procs.log("coordinator").read_text()
    assert "connection to" not in coordinator_log or "lost" not in coordinator_log
    cam1_keeps_being_served(fleet)


def test_bad_numbers_in_an_assignment_are_refused_by_the_node_which_serves_on(fleet: SecureFleet) -> None:
    held = Assignment(**fleet.retained(fleet.topics.assign("cam-1")))
    for change in ({"imgsz": 32000}, {"codec": {"bits": 4, "level": 5.5}}, {"max_wait_ms": float("inf")},
                   {"codec": {"bits": 99}}, {"cut": "zz"}):
        data = {**held.__dict__, "generation": held.generation + 1, **change}
        fleet.operator.publish(fleet.topics.assign("cam-1"), json.dumps(data).encode(), qos=1, timeout=5)
    metrics = fleet.metrics("cam-1", where=lambda m: m.get("bad_assignments", 0) >= 1, timeout=30)
    assert metrics["ready"]
    fleet.operator.publish(fleet.topics.assign("cam-1"), held.to_json(), qos=1, retain=True, timeout=5)
    cam1_keeps_being_served(fleet)


def test_frames_are_acknowledged_and_the_clocks_compared(fleet: SecureFleet) -> None:
    m = fleet.metrics("cam-1", where=lambda m: m["frames_acked"] >= 5)
    assert m["frames_lost"] <= 1 and not m["tail_silent"]
    assert abs(m["clock_offset_ms"]) < 50  # one machine, one clock


# ---- the cases that kill or freeze processes: a fleet each -------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[SecureFleet]:
    f = SecureFleet(tmp_path, {"cam-1": "head", "tail-1": "tail", "tail-2": "tail"})
    try:
        yield f
    finally:
        f.close()


def _serving(f: SecureFleet, *head_args: str) -> str:
    f.coordinator()
    f.node("tail-1")
    f.wait_state("tail-1", "online")
    f.node("cam-1", "--source", "synthetic:100000", "--fps", "8", *head_args)
    first = f.wait_detections(3, timeout=180, where=lambda r: r["head"] == "cam-1")
    f.node("tail-2")
    f.wait_state("tail-2", "online")
    return str(first[-1]["tail"])


def test_a_partitioned_tail_is_noticed_in_seconds_and_its_frames_counted_lost(fresh: SecureFleet) -> None:
    serving = _serving(fresh)
    fresh.pause(serving)  # its TCP connection stays up: the broker will not notice for ~45 s
    paused = time.monotonic()
    other = "tail-2" if serving == "tail-1" else "tail-1"
    silent = fresh.metrics("cam-1", where=lambda m: m["tail_silent"] or m["route"] == other, timeout=30)
    fresh.wait_detections(2, timeout=30, where=lambda r: r["head"] == "cam-1" and r["tail"] == other)
    rerouted_after = time.monotonic() - paused
    print(f"\nfigure: partitioned tail → detections from the other tail after {rerouted_after:.1f} s")
    assert rerouted_after < 15.0, f"re-routed only after {rerouted_after:.1f} s"
    lost = fresh.metrics("cam-1", where=lambda m: m["frames_lost"] > 0, timeout=20)
    assert lost["frames_lost"] > 0 and silent is not None


def test_a_coordinator_restarted_on_stale_broker_state_is_followed(fresh: SecureFleet) -> None:
    serving = _serving(fresh)
    held = Assignment(**fresh.retained(fresh.topics.assign("cam-1")))
    fresh.procs.kill(["coordinator", serving])  # the power goes: the coordinator and the serving tail
    # what a broker restored from an old autosave holds: an older generation, routed to the dead tail
    stale = Assignment(**{**held.__dict__, "generation": max(0, held.generation - 1), "route": serving})
    fresh.operator.publish(fresh.topics.assign("cam-1"), stale.to_json(), qos=1, retain=True, timeout=5)
    fresh.operator.publish(fresh.topics.state(serving), b"offline", qos=1, retain=True, timeout=5)
    restarted = time.monotonic()
    fresh.coordinator()
    other = "tail-2" if serving == "tail-1" else "tail-1"
    fresh.wait_detections(2, timeout=60, where=lambda r: r["head"] == "cam-1" and r["tail"] == other)
    print(f"\nfigure: coordinator restarted on stale state → detections after {time.monotonic() - restarted:.1f} s")
    assert time.monotonic() - restarted < 30


@pytest.fixture(scope="module")
def clock_skew(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A preload library that moves one process's wall clock (tests/cluster/clock_skew.c)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the clock-skew shim (scripts/system-deps installs gcc)")
    out = tmp_path_factory.mktemp("skew") / "clock_skew.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(Path(__file__).with_name("clock_skew.c")),
                    "-ldl"], check=True, capture_output=True)
    return str(out)


def test_a_head_whose_clock_is_5_minutes_off_gets_true_latencies(fresh: SecureFleet, clock_skew: str) -> None:
    _serving(fresh, "--threads", "1")
    fresh.procs.stop(["cam-1"])
    fresh.metrics_sub.drain()
    fresh.node("cam-1", "--source", "synthetic:100000", "--fps", "4",
               env={"LD_PRELOAD": clock_skew, "SPLITINFER_TEST_CLOCK_SKEW_S": "300"})
    skewed = fresh.wait_detections(8, timeout=120, where=lambda r: r["head"] == "cam-1" and r["clock"]["sent"]
                                   - r["clock"]["received"] > 200)  # records of the new head only
    latencies = [r["timings"]["e2e_ms"] for r in skewed[-4:]]
    print(f"\nfigure: head clock +300 s → e2e {latencies} ms")
    # corrected by the head's measured offset: without it the tail would see frames from 300 s in the future (and
    # report 0, never a negative latency); queueing on a loaded machine may add seconds, never minutes
    assert all(0 < ms < 60_000 for ms in latencies), latencies
    assert all(0 <= r["timings"]["transit_ms"] < 10_000 for r in skewed[-4:])
    m = fresh.metrics("cam-1", where=lambda m: m["frames_acked"] > 3 and m["clock_offset_ms"] < -1000)
    assert m["clock_offset_ms"] == pytest.approx(-300_000, abs=2_000)  # the tail's clock minus the head's
    assert "cam-1's clock is +300 s off ours" in fresh.procs.log("coordinator").read_text()


def test_a_wrong_fleet_secret_stops_deploy_before_it_changes_anything(fleet: SecureFleet,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from splitinfer.cli.app import app

    monkeypatch.setenv("FLEET_SECRET", "not-the-secret-the-broker-has")
    result = CliRunner().invoke(app, ["deploy", "-f", str(fleet.fleet_file)])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and "Nothing was deployed" in result.output
    assert "unreachable" not in result.output
