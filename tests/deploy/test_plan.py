"""The planner: container specs, config hash, rolling order and the keep/start/recreate decision."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from splitinfer.deploy import Action, ContainerState, container_spec, decide, plan_targets
from splitinfer.errors import FleetConfigError
from splitinfer.fleet import Fleet

WEIGHTS = b"not really a checkpoint"
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()


@pytest.fixture(autouse=True)
def model_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fleet's model file, on "the operator's machine": the current folder, where plan_targets looks."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolo11n.pt").write_bytes(WEIGHTS)
    return tmp_path


def _fleet(**changes: object) -> Fleet:
    data = {
        "fleet": "traffic-a",
        "broker": {"url": "mqtt://10.0.0.2:1883", "username": "si", "password_env": "MQTT_PW"},
        "model": {"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "imgsz": 640},
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
    assert tail.gpus == 2 and tail.runtime is None
    assert tail.volumes == ("/data:/data:ro", "splitinfer-traffic-a-models:/models:ro",
                            "splitinfer-traffic-a-cache:/cache:rw")
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


def test_accelerators_reach_the_containers_as_each_machine_needs() -> None:
    """A Jetson head gets the nvidia runtime (device requests fail there); an x86 tail a GPU request."""
    fleet = _fleet(defaults={"cut": "b", "bits": 4, "half": False})
    head, tail = (container_spec(fleet, fleet.devices[k], environ=ENV) for k in (0, 1))
    assert head.env["SPLITINFER_DEVICE"] == "auto" and "SPLITINFER_HALF" not in head.env
    shown = head.describe()
    assert shown["runtime"] == "nvidia" and shown["device_requests"] == []
    shown = tail.describe()
    assert shown["runtime"] is None and shown["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    data = _fleet().model_dump()
    data["devices"][0].update(device="cuda")
    data["devices"][1].update(half=True)
    fleet = Fleet.model_validate(data)
    assert container_spec(fleet, fleet.devices[0], environ=ENV).env["SPLITINFER_DEVICE"] == "cuda"
    assert container_spec(fleet, fleet.devices[1], environ=ENV).env["SPLITINFER_HALF"] == "1"


def test_every_node_gets_the_model_and_cache_volumes() -> None:
    fleet = _fleet()
    spec = container_spec(fleet, fleet.devices[2], environ=ENV)
    assert spec.env["SPLITINFER_MODEL_DIR"] == "/models" and spec.env["SPLITINFER_CACHE"] == "/cache"
    assert spec.volumes == ("splitinfer-traffic-a-models:/models:ro", "splitinfer-traffic-a-cache:/cache:rw")


def test_cameras_reach_the_container() -> None:
    data = _fleet().model_dump()
    data["devices"][0].update(source="csi://0?width=1920&height=1080")  # runtime: nvidia already
    data["devices"][2].update(source="/dev/video2")
    fleet = Fleet.model_validate(data)
    csi = container_spec(fleet, fleet.devices[0], environ=ENV)
    assert "/tmp/argus_socket:/tmp/argus_socket" in csi.volumes and csi.devices == ("/dev/video0",)
    assert container_spec(fleet, fleet.devices[2], environ=ENV).devices == ("/dev/video2",)
    data["devices"][0].update(source="1")
    fleet = Fleet.model_validate(data)
    assert container_spec(fleet, fleet.devices[0], environ=ENV).devices == ("/dev/video0", "/dev/video1")


def test_the_model_and_its_table_are_distributed(model_here: Path) -> None:
    (model_here / "calib.json").write_bytes(b"{}")
    table = {"path": "calib.json", "sha256": hashlib.sha256(b"{}").hexdigest()}
    fleet = _fleet(model={"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "tables": [table]})
    targets = plan_targets(fleet, environ=ENV)
    files = [(f.name, f.sha256) for f in targets[0].models]
    assert files == [("yolo11n.pt", WEIGHTS_SHA), ("calib.json", hashlib.sha256(b"{}").hexdigest())]
    assert all(t.models == targets[0].models for t in targets)
    assert plan_targets(_fleet(model={"path": "yolo11n.yaml"}), environ=ENV)[0].models == ()  # Ultralytics' own
    (model_here / "mine.yaml").write_text("nc: 2\n")
    assert [f.name for f in plan_targets(_fleet(model={"path": "mine.yaml"}), environ=ENV)[0].models] == ["mine.yaml"]


def test_a_checkpoint_without_its_sha256_is_refused_with_the_digest_to_paste() -> None:
    with pytest.raises(FleetConfigError) as info:
        plan_targets(_fleet(model={"path": "yolo11n.pt"}), environ=ENV, fleet_file="fleet.yaml")
    assert str(info.value) == (f"fleet.yaml: model.sha256: required to distribute yolo11n.pt (nodes refuse any other "
                               f'file); add under model:   sha256: "{WEIGHTS_SHA}"')
    with pytest.raises(FleetConfigError, match=f'model.sha256: {"0" * 64} is not the digest of .*{WEIGHTS_SHA}'):
        plan_targets(_fleet(model={"path": "yolo11n.pt", "sha256": "0" * 64}), environ=ENV)
    with pytest.raises(FleetConfigError, match=r"model.path: .*other.pt: file not found"):
        plan_targets(_fleet(model={"path": "other.pt", "sha256": WEIGHTS_SHA}), environ=ENV)
    missing = {"path": "nope.npz", "sha256": "0" * 64}
    with pytest.raises(FleetConfigError, match=r"model.tables\[0\].path: .*nope.npz: file not found"):
        plan_targets(_fleet(model={"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "tables": [missing]}), environ=ENV)


def test_a_table_must_be_the_file_its_sha256_names(model_here: Path) -> None:
    (model_here / "calib.npz").write_bytes(b"PK")
    wrong = {"path": "calib.npz", "sha256": "0" * 64}
    with pytest.raises(FleetConfigError, match=r"model.tables\[0\].sha256: 0{64} is not the digest of .*calib.npz "
                                               f"\\({hashlib.sha256(b'PK').hexdigest()}\\)"):
        plan_targets(_fleet(model={"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "tables": [wrong]}), environ=ENV)
    with pytest.raises(ValueError, match=r"'yolo11n\.pt' is used twice"):
        _fleet(model={"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "tables": [{**wrong, "path": "x/yolo11n.pt"}]})


def test_the_policy_names_the_model_as_deploy_copies_it() -> None:
    from splitinfer.deploy.live import policy_from_fleet

    assert policy_from_fleet(_fleet(model={"path": "/home/op/runs/best.pt", "sha256": WEIGHTS_SHA})).model == "best.pt"
    assert policy_from_fleet(_fleet(model={"path": "yolo11n.yaml"})).model == "yolo11n.yaml"
    assert policy_from_fleet(_fleet(model={"name": "yolo11n"})).model == "yolo11n.pt"


def test_the_policy_carries_the_codec_end_to_end() -> None:
    # fleet.yaml's tables, quality and keyframe interval reach the coordinator; a moving camera turns delta off
    from splitinfer.deploy.live import policy_from_fleet

    table = {"path": "tables/yolo11n-d-640.npz", "sha256": "cd" * 32}
    fleet = _fleet(model={"path": "yolo11n.pt", "sha256": WEIGHTS_SHA, "tables": [table]},
                   defaults={"cut": "d", "quality": 60})
    fleet = fleet.model_copy(update={"devices": [fleet.devices[0].model_copy(update={"keyframe_interval": 0}),
                                                 *fleet.devices[1:]]})
    policy = policy_from_fleet(fleet)
    assert [(t.name, t.sha256) for t in policy.tables] == [("yolo11n-d-640.npz", "cd" * 32)]
    assert policy.codec == {"bits": 4, "quality": 60, "keyframe_interval": 10}
    assert policy.overrides["cam-1"].codec == {"bits": 4, "keyframe_interval": 0}
