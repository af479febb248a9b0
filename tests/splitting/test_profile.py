"""Per-layer profiles: the measurements' shape and arithmetic, and the cache (a real, tiny model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

import splitinfer
from splitinfer.splitting.profile import cache_path, cached, measure_cuts, measure_layers, tail_profile

pytestmark = pytest.mark.model

IMGSZ = 64


@pytest.fixture(scope="module")
def model() -> Any:
    return splitinfer.load_model("yolo11n.yaml")


def test_every_layer_gets_a_time(model: Any) -> None:
    times = measure_layers(model, IMGSZ, repeats=2, warmup=1)
    assert len(times) == model.graph.num_layers and all(t >= 0 for t in times) and sum(times) > 0


def test_cut_bytes_are_what_crosses_the_cut(model: Any) -> None:
    def raw(features: Any) -> bytes:  # fp32, no codec: bytes = 4 × the live set's values
        return b"".join(t.numpy().tobytes() for t in features.tensors)

    image = np.full((96, 128, 3), 114, np.uint8)
    cuts = measure_cuts(model, [image, image], IMGSZ, encode=raw, cuts=[4, 11])
    from splitinfer.splitting.inspect import inspect_cuts

    values = {c.cut: c.values for c in inspect_cuts(model, IMGSZ)[1]}
    assert cuts["4"]["bytes"] == 4 * values[4] and cuts["11"]["bytes"] == 4 * values[11]
    assert cuts["4"]["decode_ms"] == 0.0 and cuts["4"]["encode_ms"] >= 0


def test_profiles_are_cached_per_model_size_batch_and_device(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SPLITINFER_CACHE", str(tmp_path))
    path = cache_path("ab" * 32, 320, 8, "cuda:0", kind="tail")
    import torch

    version = torch.__version__.split("+")[0]
    assert path == tmp_path / "profiles" / f"{'ab' * 12}-320-8-cuda_0-torch{version}-tail.json"
    calls = []

    def measure() -> Dict[str, Any]:
        calls.append(1)
        return {"layer_ms": [1.0]}

    assert cached(path, measure)["layer_ms"] == [1.0]
    assert cached(path, measure)["layer_ms"] == [1.0] and len(calls) == 1
    path.write_text("not json")
    cached(path, measure)
    assert len(calls) == 2


def test_tail_profile_names_the_model_as_assigned(model: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SPLITINFER_CACHE", str(tmp_path))
    image = np.full((96, 128, 3), 114, np.uint8)
    first = tail_profile(model, name="one.yaml", imgsz=IMGSZ, batch=2, images=[image])
    again = tail_profile(model, name="two.yaml", imgsz=IMGSZ, batch=2, images=[image])
    assert first["model"] == "one.yaml" and again["model"] == "two.yaml"
    assert first["layer_ms"] == again["layer_ms"]  # from the cache
    assert len(first["batch_layer_ms"]) == model.graph.num_layers and first["presets"]["b"] == 11
