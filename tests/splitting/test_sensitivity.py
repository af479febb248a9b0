"""Calibrating the sensitivity-weighted codec on real Ultralytics models (seeded random weights, small inputs)."""

from __future__ import annotations

from typing import Any, List

import numpy as np
import pytest
import torch

import splitinfer
from splitinfer import Codec
from splitinfer.errors import ModelError
from splitinfer.splitting.sensitivity import calibrate, output_loss_terms

pytestmark = pytest.mark.model

IMGSZ = 128


def images(n: int, seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
        img[20:70, 40:80] = rng.integers(0, 255, size=3)  # a flat block: something for the detector to see
        out.append(img)
    return out


@pytest.fixture(scope="module")
def model() -> Any:
    return splitinfer.load_model("yolov8n.yaml")


@pytest.mark.parametrize("cut", ["b", "d"])
def test_table_matches_the_live_set(model: Any, cut: str) -> None:
    head, _ = splitinfer.split(model, cut)
    table = calibrate(model, cut, images(2), imgsz=IMGSZ, probes=2, min_conf=0.0)  # random weights: no confidence
    x, metas = splitinfer.to_batch(images(1)[:1], IMGSZ)
    features = head(x, metas)
    assert table.model == model.fingerprint and table.cut == head.cut and table.imgsz == IMGSZ
    assert table.layers == head.live
    assert table.channels() == tuple(int(t.shape[1]) for t in features.tensors)
    for s in table.sensitivity:
        assert np.isfinite(s).all() and (s >= 0).all() and s.max() > 0


def test_means_are_the_crossing_tensors_means(model: Any) -> None:
    frames = images(3, seed=1)
    table = calibrate(model, "d", frames, imgsz=IMGSZ, probes=1, min_conf=0.0)
    head, _ = splitinfer.split(model, "d")
    sums = None
    for img in frames:
        x, metas = splitinfer.to_batch([img], IMGSZ)
        mu = [t.double().mean(dim=(0, 2, 3)) for t in head(x, metas).tensors]
        sums = mu if sums is None else [a + b for a, b in zip(sums, mu)]
    assert sums is not None
    for got, want in zip(table.mean, sums):
        assert np.allclose(got, (want / len(frames)).numpy(), rtol=1e-5, atol=1e-6)


def test_calibration_is_reproducible_and_seeded(model: Any) -> None:
    frames = images(2, seed=2)
    a = calibrate(model, "d", frames, imgsz=IMGSZ, seed=3, min_conf=0.0)
    b = calibrate(model, "d", frames, imgsz=IMGSZ, seed=3, min_conf=0.0)
    c = calibrate(model, "d", frames, imgsz=IMGSZ, seed=4, min_conf=0.0)
    assert a.digest == b.digest
    assert c.digest != a.digest


def test_codec_with_the_table_runs_the_tail(model: Any) -> None:
    table = calibrate(model, "c", images(2, seed=5), imgsz=IMGSZ, min_conf=0.0)
    head, tail = splitinfer.split(model, "c")
    x, metas = splitinfer.to_batch(images(1, seed=6), IMGSZ)
    features = head(x, metas)
    decoded = Codec(table=table).decode(Codec(table=table, quality=90).encode(features))
    ref, out = tail(features)[0], tail(decoded)[0]
    assert out.shape == ref.shape and bool(torch.isfinite(out).all())


def test_gauss_newton_estimate_is_unbiased_on_a_linear_tail() -> None:
    """For z = A x and uniform weights, E[(A^T v)_i^2] = sum_j A_ji^2: the probes' average converges to it."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(40, 6, generator=gen)
    exact = (a**2).sum(0)
    x = torch.zeros(6, requires_grad=True)
    total = torch.zeros(6)
    n = 4000
    for _ in range(n):
        v = torch.randint(0, 2, (40,), generator=gen).float() * 2 - 1
        (g,) = torch.autograd.grad(((a @ x) * v).sum(), x)
        total += g**2
    assert torch.allclose(total / n, exact, rtol=0.08)


def test_loss_terms_weight_only_confident_anchors() -> None:
    y = torch.zeros(1, 6, 4)
    y[0, 2:4] = torch.tensor([[4.0, 20.0, 100.0, 50.0], [4.0, 20.0, 100.0, 50.0]])  # w, h
    y[0, 4] = torch.tensor([0.9, 0.01, 0.3, 0.049])
    z, w = output_loss_terms(y, min_conf=0.05)
    assert w.flatten().tolist() == pytest.approx([0.9, 0.0, 0.3, 0.0])
    assert z.shape == y.shape
    y.requires_grad_(True)
    z, _ = output_loss_terms(y, min_conf=0.05)
    (g,) = torch.autograd.grad(z[0, 0, 2], y, retain_graph=True)
    assert float(g[0, 0, 2]) == pytest.approx(1 / 100.0)  # box x over the anchor's own width
    (g,) = torch.autograd.grad(z[0, 0, 0], y)
    assert float(g[0, 0, 0]) == pytest.approx(1 / 8.0)  # tiny boxes count as 8 pixels


def test_bad_calibration_requests(model: Any) -> None:
    with pytest.raises(ModelError, match="at least one frame"):
        calibrate(model, "d", [], imgsz=IMGSZ)
    with pytest.raises(ModelError, match="probe"):
        calibrate(model, "d", images(1), imgsz=IMGSZ, probes=0)
    with pytest.raises(ModelError, match=r"no anchor reached confidence 0\.99"):
        calibrate(model, "d", images(1), imgsz=IMGSZ, min_conf=0.99)


def test_a_model_that_detects_nothing_is_refused_before_any_probe(model: Any) -> None:
    from splitinfer.splitting.sensitivity import check_detects

    check_detects(model, images(2), IMGSZ)  # what calibrate() accepts
    with pytest.raises(ModelError, match=r"no anchor reached confidence 0\.99 on any of the 2 calibration frames"):
        check_detects(model, images(2), IMGSZ, min_conf=0.99)  # what calibrate() refuses, after its probes
