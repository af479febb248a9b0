from __future__ import annotations

import pytest
import torch

from splitinfer.codec.quantize import fit, groups, quantize


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
