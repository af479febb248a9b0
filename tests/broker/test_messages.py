from __future__ import annotations

import json
import struct

import pytest

from splitinfer.broker.messages import Assignment, DeviceInfo, ProtocolError, pack_features, parse_json, unpack_features


def test_features_envelope_round_trip() -> None:
    payload = pack_features(b"blob-bytes", 1234.5, {"head_ms": 12.5, "encode_ms": 1.25})
    sent, stages, blob = unpack_features(payload)
    assert (sent, blob) == (1234.5, b"blob-bytes")
    assert stages == {"capture_ms": 0.0, "preprocess_ms": 0.0, "head_ms": 12.5, "encode_ms": 1.25}


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
    a = Assignment(generation=3, model="m.pt", sha256="ab", imgsz=320, cut="c", codec={"bits": 3}, route="tail-1")
    b = Assignment.from_json(a.to_json())
    assert a == b
    assert a.same_pipeline(Assignment(generation=4, model="m.pt", sha256="ab", imgsz=320, cut="c",
                                      codec={"bits": 3}, route="tail-2"))
    assert not a.same_pipeline(Assignment(generation=4, model="m.pt", sha256="ab", imgsz=320, cut="d",
                                          codec={"bits": 3}, route="tail-1"))


def test_numeric_cut_is_accepted_as_int_or_string() -> None:
    assert Assignment.from_json(b'{"generation": 1, "model": "m", "cut": 11}').cut == "11"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"model": "m"}', "missing field 'generation'"),
        (b'{"generation": "1", "model": "m"}', "should be int"),
        (b'{"generation": true, "model": "m"}', "should be int"),
        (b'{"generation": 1, "model": "m", "cut": [1]}', "a|b|c|d"),
        (b'{"generation": 1, "model": "m", "batch": 0}', "out-of-range"),
        (b'{"generation": 1, "model": "m", "heads": [1]}', "device ids"),
        (b"{" + b" " * 300_000 + b"}", "over the"),
    ],
)
def test_bad_assignments_are_refused_clearly(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Assignment.from_json(payload)


def test_device_info_round_trip_and_role_check() -> None:
    info = DeviceInfo(id="jetson-01", role="head", arch="aarch64", memory_mb=3964, profile={"x": 1})
    assert DeviceInfo.from_json(info.to_json()) == info
    with pytest.raises(ProtocolError, match="role must be one of"):
        DeviceInfo.from_json(json.dumps({"id": "x", "role": "hed"}).encode())


def test_device_info_carries_the_torch_device_and_a_failure() -> None:
    info = DeviceInfo(id="jetson-01", role="head", device="cuda:0", failure="model file not found")
    back = DeviceInfo.from_json(info.to_json())
    assert back.device == "cuda:0" and back.failure == "model file not found"
    older = DeviceInfo.from_json(json.dumps({"id": "x", "role": "tail"}).encode())  # a node from before
    assert older.device == "" and older.failure == ""
    with pytest.raises(ProtocolError, match="field 'device' should be str"):
        DeviceInfo.from_json(json.dumps({"id": "x", "role": "tail", "device": 0}).encode())


def test_parse_json_names_what_it_parsed() -> None:
    with pytest.raises(ProtocolError, match=r"^policy: not JSON"):
        parse_json(b"{", "policy")
