from __future__ import annotations

from typing import Tuple

import numpy as np
import pytest
import torch

from splitinfer import Codec, FeatureSet
from splitinfer.codec.quantize import FP16_MAX, FP16_TINY, fit, groups, quantize


def reference_symbols(g: torch.Tensor, step: torch.Tensor, zp: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantizer by its definition: clamp(floor(x / step + zp + 0.5), 0, L - 1), with torch's own cast."""
    q = torch.mul(g.float(), (1.0 / step)[..., None]).add_((zp + 0.5)[..., None])
    return q.clamp_(0, (1 << bits) - 0.5).to(torch.uint8)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("clip", [1.0, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fast_cpu_cast_matches_the_definition(bits: int, clip: float, dtype: torch.dtype) -> None:
    x = torch.nn.functional.silu(torch.randn(2, 5, 333, generator=torch.Generator().manual_seed(bits)) * 3)
    g = groups(x.to(dtype), per_channel=True)
    step, zp = fit(g, bits, clip)  # clip < 1 saturates the tails on both sides
    q = quantize(g, step, zp, bits)
    assert q.dtype == torch.uint8 and q.shape == g.shape
    assert torch.equal(q, reference_symbols(g, step, zp, bits))
    assert int(q.max()) <= (1 << bits) - 1


def reference_fit(g: torch.Tensor, bits: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The min/max fit by its definition, in torch ops (docs/wire-format.md)."""
    lo = g.amin(dim=-1).float().clamp(max=0.0)
    hi = g.amax(dim=-1).float().clamp(min=0.0)
    levels = (1 << bits) - 1
    exact = ((hi - lo) / levels).clamp(min=FP16_TINY, max=FP16_MAX)
    step = exact.half().float()
    up = (exact * (1 + 2.0**-10)).clamp(max=FP16_MAX).half().float()
    following = torch.from_numpy(np.nextafter(exact.half().numpy(), np.float16(np.inf)).astype(np.float32))
    up = torch.where(up < exact, following, up)  # subnormal steps: the next fp16 value
    step = torch.where(step < exact, up, step)
    return step, torch.round(-lo / step).clamp(0, levels)


@pytest.mark.parametrize("scale", [1e-8, 3e-7, 2e-6, 1e-5, 1e-3, 1.0, 1e4])
def test_the_steps_span_every_range(scale: float) -> None:
    # (L - 1) steps cover [lo, hi], subnormal fp16 steps included: no value of the group saturates
    gen = torch.Generator().manual_seed(7)
    g = torch.rand(1, 256, 5, generator=gen) * scale * torch.rand(1, 256, 1, generator=gen)
    for bits in (2, 4, 8):
        lo, hi = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)
        step, _ = fit(g, bits)
        assert bool(((hi - lo) <= step * ((1 << bits) - 1)).all())


@pytest.mark.parametrize("scale", [1e-7, 1e-3, 1.0, 37.0, 1e4])
def test_fit_matches_the_torch_definition(scale: float) -> None:
    gen = torch.Generator().manual_seed(int(scale * 1e7) % 1000)
    g = torch.randn(3, 64, 9, generator=gen) * scale + torch.randn(3, 64, 1, generator=gen) * scale
    g[0] = g[0].clamp(min=0)  # groups without negatives, and one group all zero
    g[1, 0] = 0
    for bits in range(1, 9):
        step, zp = fit(g, bits)
        ref_step, ref_zp = reference_fit(g, bits)
        assert step.dtype == zp.dtype == torch.float32
        assert torch.equal(step, ref_step) and torch.equal(zp, ref_zp)


@pytest.mark.parametrize("bits", range(2, 9))
def test_in_range_fast_path_gives_the_same_symbols(bits: int) -> None:
    # values exactly at each group's min and max, and between: skipping the float clamp changes nothing
    gen = torch.Generator().manual_seed(bits)
    x = torch.nn.functional.silu(torch.randn(2, 7, 999, generator=gen) * 4)
    x[..., 0], x[..., 1] = x.amin(-1), x.amax(-1)
    g = groups(x, per_channel=True)
    step, zp = fit(g, bits)
    fast = quantize(g, step, zp, bits, in_range=True)
    assert torch.equal(fast, quantize(g, step, zp, bits))
    assert int(fast.max()) <= (1 << bits) - 1


def test_spans_beyond_fp16_saturate_instead_of_wrapping() -> None:
    # a span over fp16's max saturates the step: values then leave the fitted range, and the encoder must
    # clamp them (never let a float above 255 wrap around in the uint8 cast)
    x = torch.linspace(0, 5e7, 4096).reshape(1, 1, 4096)
    out = Codec(bits=4, granularity="tensor").decode(Codec(bits=4, granularity="tensor").encode(features_of(x)))
    y = out.tensors[0]
    assert float(y.min()) >= 0 and float(y.max()) == 15 * FP16_MAX
    assert bool((y[0, 0, 1:] >= y[0, 0, :-1]).all())  # monotone: nothing wrapped to a small symbol


def features_of(x: torch.Tensor) -> FeatureSet:
    return FeatureSet(cut=1, layers=(0,), tensors=(x,), input_shape=(8, 8), model="test")
