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
