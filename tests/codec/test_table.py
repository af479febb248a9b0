"""The calibration table's file format: round trip, digest, and a loader that refuses anything off."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from splitinfer import CodecError
from splitinfer.codec import CalibrationTable
from splitinfer.codec.table import MAX_FILE_BYTES


def make_table(**changes: Any) -> CalibrationTable:
    fields: Dict[str, Any] = dict(
        model="ab" * 32, cut=22, imgsz=640, layers=(15, 18, 21),
        sensitivity=[np.linspace(0, 1e-3, 128), np.full(256, 2e-4), np.geomspace(1e-6, 1e-2, 512)],
        mean=[np.zeros(128), np.linspace(-0.2, 3, 256), np.ones(512)], meta={"frames": 40, "probes": 2},
    )
    fields.update(changes)
    return CalibrationTable(**fields)


def npz(arrays: Dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def members(table: CalibrationTable) -> Dict[str, Any]:
    with np.load(io.BytesIO(table.to_bytes()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_round_trip_keeps_values_and_digest(tmp_path: Path) -> None:
    table = make_table()
    loaded = CalibrationTable.load(table.save(tmp_path / "table.npz"))
    assert loaded.digest == table.digest and len(table.digest) == 32
    assert loaded.layers == table.layers and loaded.meta == table.meta
    for a, b in zip(loaded.sensitivity, table.sensitivity):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert loaded.describe()["channels"] == [128, 256, 512]


def test_digest_follows_the_content() -> None:
    table = make_table()
    assert make_table().digest == table.digest  # not the zip's timestamps
    bumped = [s.copy() for s in table.sensitivity]
    bumped[2][7] *= 1.0001
    assert make_table(sensitivity=bumped).digest != table.digest
    assert make_table(cut=21, layers=(15, 18, 20)).digest != table.digest
    assert make_table(model="cd" * 32).digest != table.digest


def test_steps_are_deterministic_and_zero_where_never_sent() -> None:
    table = make_table()
    (step, inv), _, (step3, inv3) = table.steps(0.001)
    assert step[0] == 0.0 and inv[0] == 0.0  # sensitivity 0: never sent
    assert step.dtype == np.float32 and np.isfinite(step).all()
    assert np.float32(0.001 / np.sqrt(np.float64(np.float32(1e-2)))) == step3[-1]
    assert np.allclose(step3 * inv3, 1.0, rtol=1e-6)
    with pytest.raises(CodecError, match="positive and finite"):
        table.steps(0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(sensitivity=[np.full(128, np.nan), np.ones(256), np.ones(512)]), "NaN"),
        (dict(mean=[np.zeros(128), np.full(256, np.inf), np.ones(512)]), "NaN"),
        (dict(sensitivity=[-np.ones(128), np.ones(256), np.ones(512)]), "negative"),
        (dict(mean=[np.zeros(127), np.zeros(256), np.ones(512)]), "same"),
        (dict(layers=(15, 18, 23)), "below the cut"),
        (dict(layers=(18, 15, 21)), "ascending"),
        (dict(layers=(15, 18)), "layers"),
        (dict(model="x" * 300), "255"),
        (dict(imgsz=0), "imgsz"),
    ],
)
def test_inconsistent_tables_are_refused(change: Dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        make_table(**change)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format=np.array("something-else")), "not a calibration table"),
        (lambda m: m.update(version=np.array(99)), "version 99"),
        (lambda m: m.pop("mean_18"), "missing mean_18"),
        (lambda m: m.pop("meta"), "missing"),
        (lambda m: m.update(extra=np.zeros(3)), "unexpected"),
        (lambda m: m.update(cut=np.array([22, 23])), "scalar"),
        (lambda m: m.update(layers=np.array([15.0, 18.0, 21.0])), "layers"),
        (lambda m: m.update(meta=np.array("{not json")), "JSON"),
        (lambda m: m.update(sensitivity_21=np.zeros((2, 256))), "channels"),
        (lambda m: m.update(mean_15=np.array(["a"] * 128)), "must be float"),
    ],
)
def test_loader_refuses_edited_files(edit: Any, message: str) -> None:
    arrays = members(make_table())
    edit(arrays)
    with pytest.raises(CodecError, match=message):
        CalibrationTable.from_bytes(npz(arrays))


def test_loader_never_unpickles() -> None:
    arrays = members(make_table())
    arrays["mean_15"] = np.array([{"a": 1}] * 128, dtype=object)
    with pytest.raises(CodecError, match=r"objects|pickle"):
        CalibrationTable.from_bytes(npz(arrays))


def test_loader_refuses_garbage_and_oversize(tmp_path: Path) -> None:
    for data in (b"", b"PK\x03\x04garbage", b"\x93NUMPY", json.dumps({"a": 1}).encode()):
        with pytest.raises(CodecError, match="calibration table"):
            CalibrationTable.from_bytes(data)
    big = tmp_path / "big.npz"
    with open(big, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(CodecError, match="limit"):
        CalibrationTable.load(big)
    with pytest.raises(CodecError, match="cannot read"):
        CalibrationTable.load(tmp_path / "missing.npz")


def test_loader_checks_a_header_before_numpy_allocates() -> None:
    """A member whose .npy header declares 2**40 values in a few bytes is refused before any allocation."""
    arrays = members(make_table())
    raw = io.BytesIO(npz(arrays))
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "mean_15.npy":
                header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
                header = header.ljust(118) + "\n"
                data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + data[-16:]
            dst.writestr(info.filename, data)
    with pytest.raises(CodecError, match="declares 1099511627776 values"):
        CalibrationTable.from_bytes(out.getvalue())
