from __future__ import annotations

import json
import struct

import pytest

from splitinfer.broker.messages import Assignment, DeviceInfo, ProtocolError, pack_features, parse_json, unpack_features


def test_features_envelope_round_trip() -> None:
    payload = pack_features(b"blob-bytes", 1234.5, {"head_ms": 12.5, "encode_ms": 1.25})
    sent, stages, blob = unpack_features(payload)
    assert (sent, blob) == (1234.5, b"blob-bytes")
    assert stages == {"capture_ms": 0.0, "preprocess_ms": 0.0, "head_ms": 12.5, "encode_ms": 1.25,
                      "clock_offset_ms": 0.0}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "shorter than its envelope"),
        (b"XXXX" + bytes(9), "expected b'SIF1'"),
        (struct.pack("<4sdB", b"SIF1", 1.0, 200), "announces 200 timings"),
        (struct.pack("<4sdB", b"SIF1", float("nan"), 0), "non-finite"),
    ],
)
def test_bad_envelopes_raise_protocol_error(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        unpack_features(payload)


def test_assignment_json_round_trip_and_pipeline_identity() -> None:
    sha = "ab" * 32
    a = Assignment(generation=3, model="m.pt", sha256=sha, imgsz=320, cut="c", codec={"bits": 3}, route="tail-1")
    b = Assignment.from_json(a.to_json())
    assert a == b
    assert a.same_pipeline(Assignment(generation=4, model="m.pt", sha256=sha, imgsz=320, cut="c",
                                      codec={"bits": 3}, route="tail-2", epoch=5.0))
    assert not a.same_pipeline(Assignment(generation=4, model="m.pt", sha256=sha, imgsz=320, cut="d",
                                          codec={"bits": 3}, route="tail-1"))


def test_a_newer_epoch_wins_over_a_higher_generation() -> None:
    held = Assignment(generation=7, model="m", epoch=100.0)
    assert Assignment(generation=8, model="m", epoch=100.0).newer_than(held)
    assert not Assignment(generation=7, model="m", epoch=100.0).newer_than(held)
    assert not Assignment(generation=5, model="m", epoch=100.0).newer_than(held)
    assert Assignment(generation=1, model="m", epoch=200.0).newer_than(held)  # a restarted coordinator
    assert not Assignment(generation=99, model="m", epoch=50.0).newer_than(held)  # an older coordinator's word
    assert Assignment(generation=1, model="m").newer_than(None)


def test_numeric_cut_is_accepted_as_int_or_string() -> None:
    assert Assignment.from_json(b'{"generation": 1, "model": "m", "cut": 11}').cut == "11"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"model": "m"}', "generation: Field required"),
        (b'{"generation": "1", "model": "m"}', "generation: Input should be a valid integer"),
        (b'{"generation": true, "model": "m"}', "generation: Input should be a valid integer"),
        (b'{"generation": 1, "model": "m", "cut": [1]}', "cut: Input should be a valid string"),
        (b'{"generation": 1, "model": "m", "cut": "zz"}', "cut: String should match"),
        (b'{"generation": 1, "model": "m", "batch": 0}', "batch: Input should be greater than or equal to 1"),
        (b'{"generation": 1, "model": "m", "heads": [1]}', r"heads\.0: Input should be a valid string"),
        (b'{"generation": 1, "model": "m", "imgsz": 32000}', "imgsz: Input should be less than or equal to 4096"),
        (b'{"generation": 1, "model": "m", "imgsz": 33}', "imgsz: Input should be a multiple of 32"),
        (b'{"generation": 1, "model": "m", "max_wait_ms": 1e999}', "max_wait_ms: Input should be a finite number"),
        (b'{"generation": 1, "model": "m", "codec": {"bits": [4]}}', "codec: bits must be a number"),
        (b'{"generation": 1, "model": "m", "route": "../x"}', "route: String should match"),
        (b'{"generation": 1, "model": "m", "sha256": "xyz"}', "sha256: String should match"),
        (b'{"generation": 1, "model": "m", "tables": [{"name": "../t.npz", "sha256": "' + b"0" * 64 + b'"}]}',
         "table: name: String should match"),
        (b'{"generation": 1, "model": "m", "tables": [{"name": "t.npz"}]}', "table: sha256: Field required"),
        (b'{"generation": 1, "model": "m", "tables": ["t.npz"]}', "tables.0: Input should be an instance"),
        (json.dumps({"generation": 1, "model": "m", "tables": [{"name": "t", "sha256": "0" * 64}] * 17}).encode(),
         "tables: List should have at most 16"),
        (b"{" + b" " * 300_000 + b"}", "over the"),
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_assignments_are_refused_clearly(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Assignment.from_json(payload)


def test_device_info_round_trip_and_role_check() -> None:
    info = DeviceInfo(id="jetson-01", role="head", arch="aarch64", memory_mb=3964, profile={"layer_ms": [1.0]})
    assert DeviceInfo.from_json(info.to_json()) == info
    with pytest.raises(ProtocolError, match="role: String should match"):
        DeviceInfo.from_json(json.dumps({"id": "x", "role": "hed"}).encode())


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"link": {"bandwidth_bps": "fast"}}, "profile.link.bandwidth_bps: Input should be a valid number"),
        ({"link": {"bandwidth_bps": -5}}, "bandwidth_bps: Input should be greater than 0"),
        ({"layer_ms": [1.0, "x"]}, r"layer_ms\.1"),
        ({"layer_ms": [1.0] * 5000}, "layer_ms: List should have at most"),
        ({"cuts": {"4": {"bytes": "many"}}}, r"cuts\.4\.bytes"),
        ({"cuts": {"-1": {"bytes": 1}}}, "cuts"),
        ({"head_scale": 0}, "head_scale: Input should be greater than 0"),
        ({"presets": {"z": 3}}, "presets"),
        ({"imgsz": 32000}, "imgsz"),
    ],
)
def test_a_hostile_profile_is_refused_whole(profile: dict, message: str) -> None:
    payload = json.dumps({"id": "cam-1", "role": "head", "profile": profile}).encode()
    with pytest.raises(ProtocolError, match=message):
        DeviceInfo.from_json(payload)


def test_a_profile_keeps_only_what_the_schema_knows() -> None:
    payload = json.dumps({"id": "cam-1", "role": "head", "profile": {"layer_ms": [1, 2], "junk": {"a": [1]}}})
    assert DeviceInfo.from_json(payload.encode()).profile == {"layer_ms": [1.0, 2.0]}


def test_device_info_carries_the_torch_device_and_a_failure() -> None:
    info = DeviceInfo(id="jetson-01", role="head", device="cuda:0", failure="model file not found")
    back = DeviceInfo.from_json(info.to_json())
    assert back.device == "cuda:0" and back.failure == "model file not found"
    older = DeviceInfo.from_json(json.dumps({"id": "x", "role": "tail"}).encode())  # a node from before
    assert older.device == "" and older.failure == ""
    with pytest.raises(ProtocolError, match="device"):
        DeviceInfo.from_json(json.dumps({"id": "x", "role": "tail", "device": 0}).encode())


def test_parse_json_names_what_it_parsed() -> None:
    with pytest.raises(ProtocolError, match=r"^policy: not JSON"):
        parse_json(b"{", "policy")


def test_assignments_and_policies_carry_calibration_tables() -> None:
    from splitinfer.broker.messages import Policy, TableRef, validated

    ref = {"name": "yolo11n-d-640.npz", "sha256": "ab" * 32}
    a = Assignment.from_json(json.dumps({"generation": 1, "model": "m", "tables": [ref]}).encode())
    assert a.tables == [TableRef(**ref)]
    assert Assignment.from_json(a.to_json()) == a
    policy = validated(Policy, {"model": "m", "tables": [ref]}, "policy")
    assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert not a.same_pipeline(Assignment.from_json(json.dumps({"generation": 2, "model": "m"}).encode()))
