"""The AVX2 kernels against the numpy/torch path: the same symbols, planes and values, bit for bit."""

from __future__ import annotations

import os
import platform

import numpy as np
import pytest
import torch

from splitinfer import Codec, CodecError
from splitinfer.codec import simd
from splitinfer.codec.pack import PLANES, pack, packed_size, unpack
from splitinfer.codec.quantize import dequantize, fit, groups, quantize, ranges

from .conftest import make_features

KERNELS = simd.kernels

if KERNELS is None:
    # scripts/test asks for them on x86-64, where a missing build is a broken install rather than a platform
    if os.environ.get("SPLITINFER_REQUIRE_SIMD") == "1" and platform.machine().lower() in ("x86_64", "amd64"):
        pytest.fail(f"the codec's AVX2 kernels should run here but: {simd.status()}", pytrace=False)
    pytest.skip(simd.status(), allow_module_level=True)


def numpy_path(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """``fn`` run on the numpy/torch path."""
    saved, simd.kernels = simd.kernels, None
    try:
        return fn(*args, **kwargs)
    finally:
        simd.kernels = saved


@pytest.mark.parametrize("per_row", [1, 7, 8, 9, 16, 17, 100])
def test_ranges_match(per_row: int) -> None:
    x = torch.randn(2, 6, per_row, generator=torch.Generator().manual_seed(per_row)) * 3
    x[1, 2] = -0.0  # a row of zeros
    lo, hi = ranges(x)
    assert torch.equal(lo, x.amin(-1)) and torch.equal(hi, x.amax(-1))
    for at in (0, per_row // 2, per_row - 1):  # a NaN anywhere in a row: that row's range is NaN
        y = x.clone()
        y[0, 3, at] = float("nan")
        lo, hi = ranges(y)
        assert lo[0, 3].isnan() and hi[0, 3].isnan() and not lo[0, 2].isnan()
    y = x.clone()
    y[1, 1, per_row - 1] = float("inf")
    assert ranges(y)[1][1, 1] == float("inf")


@pytest.mark.parametrize("clip", [1.0, 0.9])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_features_are_refused(clip: float, bad: float) -> None:
    fs = make_features(((1, 4, 64, 64),))
    fs.tensors[0][0, 1, 3, 5] = bad  # off the clip subsample's stride too
    with pytest.raises(CodecError, match="NaN"):
        Codec(clip=clip).encode(fs)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("clip", [1.0, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("per_row", [1, 31, 999])
def test_quantize_matches(bits: int, clip: float, dtype: torch.dtype, per_row: int) -> None:
    gen = torch.Generator().manual_seed(bits * 1000 + per_row)
    x = torch.nn.functional.silu(torch.randn(2, 5, per_row, generator=gen) * 3).to(dtype)
    g = groups(x, per_channel=True)
    step, zp = fit(g, bits, clip)  # clip < 1: values beyond the range saturate on both sides
    fast = quantize(g, step, zp, bits)
    assert fast.dtype == torch.uint8 and fast.shape == g.shape
    assert torch.equal(fast, numpy_path(quantize, g, step, zp, bits))
    if clip == 1.0:
        assert torch.equal(fast, numpy_path(quantize, g, step, zp, bits, in_range=True))


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 31, 32, 33, 63, 64, 65, 1001, 4101])
def test_planes_match_and_invert(bits: int, n: int) -> None:
    q = torch.randint(0, 1 << bits, (n,), dtype=torch.uint8, generator=torch.Generator().manual_seed(n * 9 + bits))
    packed = pack(q, bits, PLANES)
    assert packed.size == packed_size(n, bits, PLANES)
    assert (packed == numpy_path(pack, q, bits, PLANES)).all()
    out = unpack(packed, n, bits, PLANES)
    assert (out == q.numpy()).all()
    assert (out == numpy_path(unpack, packed, n, bits, PLANES)).all()


def test_every_plane_byte_unpacks() -> None:
    planes = np.stack([np.arange(256), np.arange(256)[::-1], np.arange(256) ^ 0x5A]).astype(np.uint8)
    data = np.tile(planes, 4).reshape(-1)  # 4 × 256 bytes a plane: the vector loop sees every byte value
    n = 8 * 4 * 256
    assert (unpack(data, n, 3, PLANES) == numpy_path(unpack, data, n, 3, PLANES)).all()


@pytest.mark.parametrize("bits", [2, 5, 8])
def test_dequantize_matches(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    g = groups(torch.randn(3, 4, 77, generator=gen) * 5, per_channel=True)
    step, zp = fit(g, bits)
    q = quantize(g, step, zp, bits)
    assert torch.equal(dequantize(q, step, zp), numpy_path(dequantize, q, step, zp))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_blobs_are_the_same_with_and_without_the_kernels(bits: int) -> None:
    fs = make_features(((2, 8, 16, 15), (2, 16, 7, 9)), seed=bits)
    blob = Codec(bits=bits).encode(fs)
    assert blob == numpy_path(Codec(bits=bits).encode, fs)
    fast, ref = Codec().decode(blob), numpy_path(Codec().decode, blob)
    assert all(torch.equal(a, b) for a, b in zip(fast.tensors, ref.tensors))


def test_sizes_are_checked_before_any_byte_is_touched() -> None:
    f32, u8 = np.zeros(12, np.float32), np.zeros(12, np.uint8)
    one = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.minmax(f32, 5, one.copy(), one.copy())
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.minmax(f32, 0, one[:0].copy(), one[:0].copy())
    KERNELS.quantize(f32, one, one, 4, 15.5, u8)  # 3 rows of 4: fine
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.quantize(f32, one, one, 5, 15.5, u8)
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.quantize(f32, one, one, 4, 300.0, u8)  # a clamp above 255 would wrap
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.dequantize(u8, one, one[:2], 4, f32)
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.pack_planes(u8, 4, np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.pack_planes(u8, 9, np.zeros(18, np.uint8))
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.unpack_planes(np.zeros(8, np.uint8), 13, 4, np.zeros(12, np.uint8))
    with pytest.raises(TypeError):
        KERNELS.pack_planes(u8, 4, b"read-only out")
    # sizes whose products wrap around in 64 bits must not pass as small ones
    huge = 2**62 + 1
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.minmax(f32[:0], 2**62, one[:1].copy(), one[:1].copy())
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.quantize(np.zeros(4, np.float32), np.ones(4, np.float32), np.ones(4, np.float32), huge, 15.5,
                         np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.dequantize(np.zeros(4, np.uint8), np.ones(4, np.float32), np.ones(4, np.float32), huge,
                           np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="sizes"):
        KERNELS.unpack_planes(np.zeros(8, np.uint8), 2**63 - 1, 8, u8)
    # a float buffer at an odd byte offset
    raw = np.zeros(13, np.uint8)
    with pytest.raises(ValueError, match="alignment"):
        KERNELS.minmax(memoryview(raw)[1:], 3, np.zeros(1, np.float32), np.zeros(1, np.float32))


def test_status_names_the_path() -> None:
    assert simd.status() == "AVX2 kernels"
