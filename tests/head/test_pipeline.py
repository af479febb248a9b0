"""The head's processing below the process level: HeadPipeline on a real (random-weights) model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import splitinfer
from splitinfer.broker.messages import Assignment
from splitinfer.codec import Codec
from splitinfer.head.pipeline import HeadPipeline
from splitinfer.head.sources import Frame

pytestmark = pytest.mark.model

MODEL = "yolov8n.yaml"


def _frames(n: int) -> list:
    rng = np.random.default_rng(0)
    return [(Frame(rng.integers(0, 255, (96 + 8 * k, 160, 3), dtype=np.uint8), k, f"f{k}"), 1.7e9 + k, 0.5)
            for k in range(n)]


def test_a_batch_becomes_one_blob_of_the_assigned_cut_with_each_frames_letterbox() -> None:
    assignment = Assignment(generation=1, model=MODEL, imgsz=128, cut="b", codec={"bits": 32}, batch=2)
    pipeline = HeadPipeline.build(assignment, model_dir="", device="cpu", half=False)
    taken = _frames(2)
    blob, timings = pipeline.process(taken, "cam-1")
    features = Codec().decode(blob)
    model = splitinfer.load_model(MODEL)
    assert features.cut == model.graph.presets()["b"] == pipeline.head.cut
    assert features.layers == model.graph.live_set(features.cut)
    assert features.input_shape == (128, 128) and features.batch == 2
    assert [f.source for f in features.frames] == ["cam-1", "cam-1"]
    assert [f.seq for f in features.frames] == [0, 1]
    assert [f.timestamp for f in features.frames] == [1.7e9, 1.7e9 + 1]
    assert features.frames[1].orig_shape == (104, 160)
    assert set(timings) == {"capture_ms", "preprocess_ms", "head_ms", "encode_ms"}
    assert timings["capture_ms"] == 0.5 and all(v >= 0 for v in timings.values())
    # fp32 passthrough: exactly what the head layers computed
    x, metas = splitinfer.to_batch([f.image for f, _, _ in taken], 128)
    expected = pipeline.head(x, metas)
    for got, want in zip(features.tensors, expected.tensors):
        assert torch.equal(got, want)


def test_the_codec_settings_of_the_assignment_are_used() -> None:
    coarse = HeadPipeline.build(Assignment(generation=1, model=MODEL, imgsz=128, cut="a", codec={"bits": 2}),
                                model_dir="", device="cpu", half=False)
    fine = HeadPipeline.build(Assignment(generation=1, model=MODEL, imgsz=128, cut="a", codec={"bits": 8}),
                              model_dir="", device="cpu", half=False)
    taken = _frames(1)
    assert len(coarse.process(taken, "cam-1")[0]) < len(fine.process(taken, "cam-1")[0])


def test_local_mode_detects_on_the_head_as_the_whole_model_does() -> None:
    from splitinfer.head.pipeline import LocalPipeline

    model = splitinfer.load_model(MODEL)
    local = LocalPipeline.build(Assignment(generation=1, model=MODEL, imgsz=128, mode="local"), model)
    local.conf = 0.001
    taken = _frames(2)
    records, timings = local.process(taken, "cam-1")
    assert [r["seq"] for r in records] == [0, 1] and all(r["mode"] == "local" and r["head"] == "cam-1"
                                                         for r in records)
    assert set(timings) == {"capture_ms", "preprocess_ms", "head_ms", "postprocess_ms"}
    x, metas = splitinfer.to_batch([taken[0][0].image], 128)
    want = splitinfer.postprocess(model(x), metas, conf=0.001)[0]
    assert len(records[0]["boxes"]) == len(want)


def test_offload_mode_sends_the_letterboxed_frame_in_the_image_codec() -> None:
    from splitinfer.codec.frames import decode_frames
    from splitinfer.head.pipeline import OffloadPipeline

    model = splitinfer.load_model(MODEL)
    assignment = Assignment(generation=1, model=MODEL, imgsz=128, mode="offload",
                            image={"format": "jpeg", "quality": 95})
    blob, timings = OffloadPipeline.build(assignment, model).process(_frames(2), "cam-1")
    _images, frames, fmt = decode_frames(blob, expect=(128, 128))
    assert fmt == "jpeg" and [f.seq for f in frames] == [0, 1] and frames[1].orig_shape == (104, 160)
    assert timings["head_ms"] == 0.0 and timings["encode_ms"] > 0
