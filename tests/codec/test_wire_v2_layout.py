"""docs/wire-format.md's version-2 layout, read byte by byte off real blobs with nothing but ``struct`` and the
documented offsets: if the code and the page part ways, this fails."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import replace
from typing import Any, Dict, List

import numpy as np

from splitinfer import Codec
from splitinfer.codec import CalibrationTable, arith
from splitinfer.codec.settings import delta_for

from .conftest import make_features
from .test_weighted import table_for


def parse(blob: bytes) -> Dict[str, Any]:
    """The blob as the page draws it."""
    assert zlib.crc32(blob[:-4]) == struct.unpack("<I", blob[-4:])[0]
    magic, version, flags, n_frames, n_tensors, cut, height, width = struct.unpack_from("<4sBBHHHHH", blob, 0)
    pos = 16
    n = blob[pos]
    model = blob[pos + 1 : pos + 1 + n].decode()
    pos += 1 + n
    digest = blob[pos : pos + 32]
    pos += 32
    frames = []
    for _ in range(n_frames):
        n = blob[pos]
        source = blob[pos + 1 : pos + 1 + n].decode()
        record = blob[pos + 1 + n : pos + 1 + n + 61]
        seq, ts, oh, ow, ratio, px, py = struct.unpack_from("<QdIIddd", record, 0)
        kind, ref, delta = record[48], struct.unpack_from("<Q", record, 49)[0], struct.unpack_from("<f", record, 57)[0]
        frames.append({"source": source, "seq": seq, "time": ts, "orig": (oh, ow), "ratio": ratio, "pad": (px, py),
                       "kind": kind, "ref": ref, "delta": delta})
        pos += 1 + n + 61
    tensors = []
    for _ in range(n_tensors):
        layer, dtype, scheme, d = struct.unpack_from("<HBBB", blob, pos)
        shape = struct.unpack_from(f"<{d}I", blob, pos + 5)
        (length,) = struct.unpack_from("<I", blob, pos + 5 + 4 * d)
        tensors.append({"layer": layer, "dtype": dtype, "scheme": scheme, "shape": shape, "length": length})
        pos += 9 + 4 * d
    for t in tensors:
        t["stream"] = blob[pos : pos + t["length"]]
        pos += t["length"]
    assert pos == len(blob) - 4  # nothing between the streams and the checksum
    return {"magic": magic, "version": version, "flags": flags, "cut": cut, "input": (height, width), "model": model,
            "digest": digest, "frames": frames, "tensors": tensors}


def documented_digest(table: CalibrationTable) -> bytes:
    head = {"format": "splitinfer-calibration-table", "version": 1, "model": table.model, "cut": table.cut,
            "imgsz": table.imgsz, "layers": list(table.layers), "meta": table.meta}
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8"))
    for s, m in zip(table.sensitivity, table.mean):
        h.update(s.astype("<f4").tobytes())
        h.update(m.astype("<f4").tobytes())
    return h.digest()


def documented_symbols(x: np.ndarray, s: np.ndarray, mean: np.ndarray, delta: float) -> np.ndarray:
    """q = clamp(floor((x - μ) · f32(√s/Δ) + 0.5), ±16383), every operation in float32."""
    inv = (np.sqrt(s.astype(np.float64)) / float(np.float32(delta))).astype(np.float32)
    x = x.astype(np.float32).reshape(x.shape[0], x.shape[1], -1)
    t = (x - mean[None, :, None].astype(np.float32)) * inv[None, :, None] + np.float32(0.5)
    return np.clip(np.floor(t), -16383, 16383).astype(np.int16)


def test_an_intra_blob_reads_as_the_page_draws_it() -> None:
    fs = make_features(seq=7)
    table = table_for(fs)
    blob = Codec(table=table, quality=60).encode(fs)
    b = parse(blob)
    assert (b["magic"], b["version"], b["flags"], b["cut"], b["input"]) == (b"SPIF", 2, 0, fs.cut, (64, 64))
    assert b["model"] == "c0ffee" and b["digest"] == table.digest == documented_digest(table)
    [frame] = b["frames"]
    assert frame == {"source": "cam-1", "seq": 7, "time": 1.7e9 + 7 / 30, "orig": (480, 640), "ratio": 0.5,
                     "pad": (0.0, 40.0), "kind": 0, "ref": 0, "delta": float(np.float32(delta_for(60)))}
    for t, x, layer, s, mean in zip(b["tensors"], fs.tensors, table.layers, table.sensitivity, table.mean):
        assert (t["layer"], t["dtype"], t["scheme"], t["shape"]) == (layer, 0, 3, tuple(x.shape))
        groups, rows, width = x.shape[0] * x.shape[1], int(np.prod(x.shape[2:-1])), x.shape[-1]
        q = arith.decode(t["stream"], (groups, rows, width), limit=16383)
        expected = documented_symbols(x.numpy(), s, mean, delta_for(60))
        assert np.array_equal(q.reshape(expected.shape), expected)
        assert not q.reshape(expected.shape)[:, s == 0].any()  # a channel of sensitivity 0 sends only zeros


def test_keyframe_and_delta_records_and_the_delta_stream() -> None:
    first = make_features(seq=1, seed=1)
    noise = make_features(seq=2, seed=2)  # the same scene a frame later: a little sensor noise, so a delta pays
    second = replace(noise, tensors=tuple(a + 0.02 * b for a, b in zip(first.tensors, noise.tensors)))
    table = table_for(first)
    encoder = Codec(table=table, keyframe_interval=2)
    key, delta = parse(encoder.encode(first)), parse(encoder.encode(second))
    assert key["flags"] == delta["flags"] == 2
    assert (key["frames"][0]["kind"], key["frames"][0]["ref"]) == (1, 1)
    assert (delta["frames"][0]["kind"], delta["frames"][0]["ref"]) == (2, 1)
    for k, t in enumerate(delta["tensors"]):
        x1, x2 = first.tensors[k].numpy(), second.tensors[k].numpy()
        args = (table.sensitivity[k], table.mean[k], delta_for(50))
        difference = documented_symbols(x2, *args).astype(np.int32) - documented_symbols(x1, *args)
        shape = (x2.shape[1], int(np.prod(x2.shape[2:-1])), x2.shape[-1])
        coded: List[int] = arith.decode(t["stream"], shape, limit=32767).reshape(difference.shape).ravel().tolist()
        assert coded == difference.ravel().tolist()
