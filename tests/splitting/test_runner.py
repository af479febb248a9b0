"""tail(head(x)) is bitwise model(x) for every cut of real Ultralytics models (seeded random weights)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import splitinfer
from splitinfer.errors import ModelError
from splitinfer.splitting import Model
from splitinfer.splitting.device import half_unsupported

pytestmark = pytest.mark.model

PRESETS = {
    "yolo11n.yaml": {"a": 4, "b": 11, "c": 17, "d": 23},
    "yolov8n.yaml": {"a": 4, "b": 10, "c": 16, "d": 22},
    "yolo26n.yaml": {"a": 4, "b": 11, "c": 17, "d": 23},
}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def model(request: pytest.FixtureRequest) -> Model:
    return splitinfer.load_model(request.param)


def identical(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(identical(u, v) for u, v in zip(a, b))
    return bool(a == b)


def test_tail_of_head_is_bitwise_the_whole_model_at_every_cut(model: Model) -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, 96, 128)
    expected = model(x)
    for cut in model.graph.cuts:
        head, tail = splitinfer.split(model, cut)
        features = head(x)
        assert features.layers == model.graph.live_set(cut)
        assert identical(tail(features), expected), f"cut {cut} differs"


def test_presets_match_the_documented_layers(model: Model) -> None:
    assert model.graph.presets() == PRESETS[model.source]


def test_yolo26_end_to_end_head_splits_exactly() -> None:
    model = splitinfer.load_model("yolo26n.yaml", end2end=True)
    assert model.end2end
    x = torch.rand(1, 3, 64, 64)
    expected = model(x)
    head, tail = splitinfer.split(model, "c")
    assert identical(tail(head(x)), expected)
    with pytest.raises(ModelError, match="no one-to-one head"):
        splitinfer.load_model("yolo11n.yaml", end2end=True)


def test_seeded_configs_are_reproducible_and_fingerprinted() -> None:
    a, b = splitinfer.load_model("yolo11n.yaml"), splitinfer.load_model("yolo11n.yaml")
    c = splitinfer.load_model("yolo11n.yaml", seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))


def test_tail_refuses_features_from_another_cut_or_model() -> None:
    model = splitinfer.load_model("yolov8n.yaml")
    other = splitinfer.load_model("yolov8n.yaml", seed=7)
    x = torch.rand(1, 3, 64, 64)
    head_b, _ = splitinfer.split(model, "b")
    _, tail_c = splitinfer.split(model, "c")
    with pytest.raises(ModelError, match="cut at layer 10"):
        tail_c(head_b(x))
    _, other_tail_b = splitinfer.split(other, "b")
    with pytest.raises(ModelError, match="made by model"):
        other_tail_b(head_b(x))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(1, 3, 65, 64), "multiple of the model's stride"),
        (torch.rand(3, 64, 64), "B×3×H×W"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "divide uint8"),
    ],
)
def test_head_rejects_bad_input(x: torch.Tensor, message: str) -> None:
    head, _ = splitinfer.split(splitinfer.load_model("yolov8n.yaml"), "a")
    with pytest.raises(ModelError, match=message):
        head(x)


def test_load_model_errors_are_clear(tmp_path: Any) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        splitinfer.load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match=r"expected a \.pt checkpoint or a \.yaml config"):
        splitinfer.load_model("model.onnx")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a loadable Ultralytics checkpoint"):
        splitinfer.load_model(str(garbage))
    with pytest.raises(ModelError, match="config not found"):
        splitinfer.load_model("no-such-model.yaml")
    with pytest.raises(ModelError, match="out of range"):
        splitinfer.split(splitinfer.load_model("yolov8n.yaml"), 99)


def test_checkpoint_round_trip_keeps_weights(tmp_path: Any) -> None:
    """A .pt saved the way Ultralytics saves it loads back to the same outputs, fingerprinted by sha256."""
    from copy import deepcopy

    model = splitinfer.load_model("yolov8n.yaml", fuse=False)
    path = tmp_path / "tiny.pt"
    torch.save({"model": deepcopy(model.net).half()}, path)
    loaded = splitinfer.load_model(str(path), fuse=False)
    assert loaded.fingerprint == splitinfer.file_sha256(path)
    x = torch.rand(1, 3, 64, 64)
    head, tail = splitinfer.split(loaded, "b")
    assert identical(tail(head(x)), loaded(x))


CPU_FP16 = half_unsupported("cpu")  # torch 1.11 (the Jetson image's) has no fp16 convolution on the CPU


@pytest.mark.skipif(CPU_FP16 is not None, reason=f"no fp16 on this CPU: {CPU_FP16}")
def test_half_precision_splits_exactly_and_keeps_fp16_on_the_wire() -> None:
    model = splitinfer.load_model("yolov8n.yaml", half=True)
    x = torch.rand(1, 3, 64, 64)
    expected = model(x.half())
    head, tail = splitinfer.split(model, "b")
    features = head(x)
    assert all(t.dtype == torch.float16 for t in features.tensors)
    assert identical(tail(features), expected)
    blob = splitinfer.Codec(bits=16).encode(features)
    assert identical(tail(splitinfer.Codec().decode(blob)), expected)
