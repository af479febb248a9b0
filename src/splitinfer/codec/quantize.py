"""Uniform affine quantization, per channel or per tensor, run with torch ops on the tensor's own device.

A group (one channel of one frame, or one whole frame of a tensor) with range ``[lo, hi]`` (``lo <= 0 <= hi``)
and ``L = 2**bits`` levels gets

    step = fp16↑((hi - lo) / (L - 1))      zp = round(-lo / step)        (zero is exactly representable)
    q    = clamp(floor(x / step + zp + 0.5), 0, L - 1)      x' = (q - zp) * step

``step`` is rounded up to an fp16 value *before* quantizing, so the encoder and the decoder use the very same step.
With ``clip < 1`` the range comes from the ``(1 - clip)`` and ``clip`` quantiles of a subsample instead
of min/max; values outside saturate.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch

from ..errors import CodecError
from . import simd

__all__ = ["dequantize", "fit", "fit_range", "groups", "quantize", "ranges"]

FP16_MAX = 65504.0
FP16_TINY = 2.0**-24  # the smallest positive fp16 (subnormal)
CLIP_SAMPLE = 4096  # values per group used to estimate clipping quantiles


def groups(x: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """View ``x`` (batch first) as ``[batch, groups, values]``: a group per channel, or one per frame."""
    batch = int(x.shape[0])
    n_groups = int(x.shape[1]) if per_channel and x.dim() >= 2 else 1
    per_group = x.numel() // (batch * n_groups) if batch * n_groups else 0
    return x.reshape(batch, n_groups, per_group)


def ranges(g: torch.Tensor, clip: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-group ``(lo, hi)`` of ``g`` ``[B, G, M]`` (float32 ``[B, G]`` on ``g``'s device): min/max, or quantiles."""
    if g.shape[-1] == 0:
        zeros = g.new_zeros(g.shape[:2], dtype=torch.float32)
        return zeros, zeros
    if clip < 1.0:
        # quantiles of a subsample would miss a NaN or infinity elsewhere (min/max propagate them to fit_range)
        if not bool(torch.isfinite(g).all()):
            raise CodecError("codec: cannot quantize a tensor holding NaN or infinity")
        sample = g[..., :: max(1, g.shape[-1] // CLIP_SAMPLE)].float()
        n = sample.shape[-1]
        lo = sample.kthvalue(max(1, int((1 - clip) * n)), dim=-1).values
        hi = sample.kthvalue(max(1, min(n, round(clip * n))), dim=-1).values
        return lo, hi
    k = simd.kernels
    if k is not None and g.device.type == "cpu" and g.dtype == torch.float32:  # one pass instead of two
        x = g.detach().contiguous()
        lo, hi = torch.empty(g.shape[:2], dtype=torch.float32), torch.empty(g.shape[:2], dtype=torch.float32)
        k.minmax(x.numpy(), x.shape[-1], lo.numpy(), hi.numpy())
        return lo, hi
    return g.amin(dim=-1).float(), g.amax(dim=-1).float()


def fit(g: torch.Tensor, bits: int, clip: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Step (fp32 holding fp16-exact values) and zero point (float) per group of ``g`` ``[B, G, M]``."""
    lo, hi = ranges(g, clip)
    # the per-group arithmetic is a few values a frame: numpy on the CPU beats ~20 tiny torch ops (on a GPU,
    # a launch and a sync each); the encoder needs the steps on the CPU for the header anyway
    step, zp = fit_range(lo.cpu().numpy(), hi.cpu().numpy(), bits)
    return torch.from_numpy(step).to(g.device), torch.from_numpy(zp).to(g.device)


def fit_range(lo: np.ndarray, hi: np.ndarray, bits: Union[int, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Step and zero point (both float32) for groups spanning ``[lo, hi]`` (float32 arrays of one shape).

    ``bits`` is one width, or an integer array of the same shape (the encoder fits all its tensors at once).
    """
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise CodecError("codec: cannot quantize a tensor holding NaN or infinity")
    f32 = np.float32
    lo = np.minimum(lo, f32(0))
    hi = np.maximum(hi, f32(0))
    levels = (np.left_shift(1, bits) - 1).astype(f32)
    exact = np.clip((hi - lo) / levels, f32(FP16_TINY), f32(FP16_MAX))
    step = exact.astype(np.float16).astype(f32)
    # round up to the next fp16 where rounding went down, so (L - 1) steps still span [lo, hi]
    up = np.minimum(exact * f32(1 + 2.0**-10), f32(FP16_MAX)).astype(np.float16).astype(f32)
    # among subnormal fp16 values the relative nudge can stay below the next value: take that value itself
    below = up < exact
    if below.any():
        nxt = np.nextafter(exact.astype(np.float16), np.float16(np.inf)).astype(f32)
        up = np.where(below, nxt, up)
    step = np.where(step < exact, up, step)
    zp = np.clip(np.round(-lo / step), f32(0), levels)
    return step, zp


def quantize(
    g: torch.Tensor, step: torch.Tensor, zp: torch.Tensor, bits: int, *, in_range: bool = False
) -> torch.Tensor:
    """Symbols (uint8, same shape as ``g``) on ``g``'s device: ``floor(x / step + zp + 0.5)``, clamped.

    ``in_range``: the caller vouches that every value lies in the range the steps were fitted to (min/max,
    no clipping), so ``x / step + zp + 0.5`` cannot fall below 0 by more than rounding: truncation already
    floors it to 0, and only the top needs clamping, on the uint8 symbols (a quarter of the bytes). At 8 bits
    the top overshoot (256) would wrap in uint8, so 8 bits always clamps the floats.
    """
    top = (1 << bits) - 1
    inv = 1.0 / step
    bias = zp + 0.5
    k = simd.kernels
    if k is not None and g.device.type == "cpu":  # one pass, clamping in float (the same symbols either way)
        x = g.detach().float().contiguous()
        out = np.empty(x.shape, dtype=np.uint8)
        k.quantize(x.numpy(), inv.float().contiguous().numpy(), bias.float().contiguous().numpy(), x.shape[-1],
                   top + 0.5, out)
        return torch.from_numpy(out)
    in_range = in_range and bits < 8
    q = torch.mul(g.float(), inv[..., None])
    q.add_(bias[..., None])
    if not in_range:
        q.clamp_(0, top + 0.5)
    # truncation of a non-negative value: the floor. On a CPU numpy's cast is ~4x faster than torch's.
    cpu = q.device.type == "cpu"
    symbols = torch.from_numpy(q.detach().numpy().astype(np.uint8)) if cpu else q.to(torch.uint8)
    if in_range:
        symbols.clamp_(max=top)  # torch's uint8 clamp: numpy's minimum on uint8 is ~20x slower
    return symbols


def dequantize(symbols: torch.Tensor, step: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """Float32 values from symbols ``[B, G, M]`` and per-group ``step``/``zp`` ``[B, G]``."""
    offset = zp * step
    k = simd.kernels
    if k is not None and symbols.device.type == "cpu":
        s = symbols.contiguous()
        out = torch.empty(s.shape, dtype=torch.float32)
        k.dequantize(s.numpy(), step.float().contiguous().numpy(), offset.float().contiguous().numpy(), s.shape[-1],
                     out.numpy())
        return out
    out = symbols.to(torch.float32)
    return out.mul_(step[..., None]).sub_(offset[..., None])
