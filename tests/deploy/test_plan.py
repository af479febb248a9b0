"""The planner: container specs, config hash, rolling order and the keep/start/recreate decision."""

from __future__ import annotations

from dataclasses import replace

import pytest

from splitinfer.deploy import Action, ContainerState, container_spec, decide, plan_targets
from splitinfer.errors import FleetConfigError
from splitinfer.fleet import Fleet


def _fleet(**changes: object) -> Fleet:
    data = {
        "fleet": "traffic-a",
        "broker": {"url": "mqtt://10.0.0.2:1883", "username": "si", "password_env": "MQTT_PW"},
        "model": {"path": "yolo11n.pt", "imgsz": 640},
        "defaults": {"cut": "b", "bits": 4},
        "devices": [
            {
                "id": "cam-1",
                "role": "head",
                "docker": "ssh://n@cam-1",
                "source": "0",
                "runtime": "nvidia",
                "devices": ["/dev/video0"],
            },
            {"id": "gpu-1", "role": "tail", "docker": "tcp://gpu:2376", "gpus": "all"},
            {"id": "cam-2", "role": "head", "docker": "ssh://n@cam-2", "source": "rtsp://c/2", "cut": 11},
            {"id": "gpu-2", "role": "tail", "docker": "tcp://gpu2:2376", "gpus": 2, "volumes": ["/data:/data:ro"]},
        ],
    }
    data.update(changes)
    return Fleet.model_validate(data)


SECRET = "s3cret-fleet-secret-1"
ENV = {"MQTT_PW": SECRET}


def test_rolling_order_is_tails_first_in_file_order() -> None:
    assert [t.device.id for t in plan_targets(_fleet(), environ=ENV)] == ["gpu-1", "gpu-2", "cam-1", "cam-2"]


def test_spec_for_jetson_head_and_gpu_tail() -> None:
    fleet = _fleet()
    head = container_spec(fleet, fleet.devices[0], environ=ENV)
    assert head.name == "splitinfer-cam-1"
    assert head.command == (
        "splitctl",
        "node",
        "head",
        "--broker",
        "mqtt://10.0.0.2:1883",
        "--fleet",
        "traffic-a",
        "--id",
        "cam-1",
    )
    assert head.runtime == "nvidia" and head.gpus is None
    assert head.devices == ("/dev/video0",)
    assert head.network_mode == "host" and head.restart_policy == "unless-stopped"
    from splitinfer.fleet.credentials import derive_password

    assert head.env["SPLITINFER_SOURCE"] == "0"
    assert head.env["SPLITINFER_MQTT_USERNAME"] == "cam-1"  # one MQTT user per device, for the broker's ACL
    assert head.env["SPLITINFER_MQTT_PASSWORD"] == derive_password(SECRET, "traffic-a", "cam-1") != SECRET
    assert "MQTT_PW" not in head.env
    assert head.public_env()["SPLITINFER_MQTT_PASSWORD"] == "***"
    assert head.labels == {
        "splitinfer.fleet": "traffic-a",
        "splitinfer.role": "head",
        "splitinfer.device": "cam-1",
        "splitinfer.config-hash": head.config_hash(),
    }
    tail = container_spec(fleet, fleet.devices[3], environ=ENV)
    assert tail.gpus == 2 and tail.runtime is None and tail.volumes == ("/data:/data:ro",)
    assert container_spec(fleet, fleet.devices[1], environ=ENV).gpus == -1


def test_missing_password_variable_is_a_config_error() -> None:
    with pytest.raises(FleetConfigError, match=r"broker.password_env: environment variable MQTT_PW is not set"):
        plan_targets(_fleet(), environ={})


def test_hash_is_stable_and_ignores_cut_bits_batch() -> None:
    first = {t.device.id: t.config_hash for t in plan_targets(_fleet(), environ=ENV)}
    again = {t.device.id: t.config_hash for t in plan_targets(_fleet(), environ=ENV)}
    other = {
        t.device.id: t.config_hash
        for t in plan_targets(_fleet(defaults={"cut": "d", "bits": 2, "batch": 8}), cut="c", bits=8, environ=ENV)
    }
    assert first == again == other
    assert len(set(first.values())) == 4


def test_hash_changes_with_what_needs_a_recreate() -> None:
    base = plan_targets(_fleet(), environ=ENV)[0].config_hash
    assert plan_targets(_fleet(), environ={"MQTT_PW": "rotated-fleet-secret-2"})[0].config_hash != base
    fleet = _fleet(images={"tail": "registry/tail:2"})
    assert plan_targets(fleet, environ=ENV)[0].config_hash != base
    assert plan_targets(_fleet(broker={"url": "mqtt://other:1883"}), environ=ENV)[0].config_hash != base


def test_cut_and_bits_overrides_reach_assignments_of_heads_only() -> None:
    targets = {t.device.id: t.assignment for t in plan_targets(_fleet(), cut="3", bits=6, environ=ENV)}
    assert targets["cam-1"].cut == 3 and targets["cam-2"].cut == 3 and targets["cam-1"].bits == 6
    assert targets["gpu-1"].cut is None and targets["gpu-1"].bits == 6
    plain = {t.device.id: t.assignment for t in plan_targets(_fleet(), environ=ENV)}
    assert plain["cam-1"].cut == "b" and plain["cam-2"].cut == 11 and plain["cam-1"].model == "yolo11n.pt"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("cut", "z", "--cut: expected a, b, c, d, auto, local, offload or a layer index ≥ 1, got 'z'"),
        ("bits", 12, "--bits: expected 2..8 (quantized) or 16/32 (passthrough), got 12"),
        ("only", ["nope"], "--only: no device 'nope' in the fleet (devices: cam-1, gpu-1, cam-2, gpu-2)"),
    ],
)
def test_bad_overrides(option: str, value: object, message: str) -> None:
    with pytest.raises(FleetConfigError) as info:
        plan_targets(_fleet(), environ=ENV, **{option: value})  # type: ignore[arg-type]
    assert str(info.value) == message


def test_only_keeps_rolling_order() -> None:
    assert [t.device.id for t in plan_targets(_fleet(), only=["cam-2", "gpu-2"], environ=ENV)] == ["gpu-2", "cam-2"]


def _state(target_hash: str, **changes: object) -> ContainerState:
    state = ContainerState(
        id="c1",
        name="splitinfer-cam-1",
        status="running",
        running=True,
        exit_code=0,
        restart_count=0,
        image="img",
        image_id="sha256:a",
        labels={"splitinfer.config-hash": target_hash},
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def test_decide() -> None:
    target = plan_targets(_fleet(), environ=ENV)[0]
    assert decide(target, None)[0] is Action.CREATE
    assert decide(target, _state(target.config_hash), image_id="sha256:a") == (Action.KEEP, "unchanged")
    action, why = decide(target, _state("0123"))
    assert action is Action.RECREATE and why == f"config changed (0123 → {target.config_hash})"
    assert decide(target, _state(target.config_hash), image_id="sha256:b")[0] is Action.RECREATE
    exited = _state(target.config_hash, status="exited", running=False)
    assert decide(target, exited) == (Action.START, "container is exited")
