from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splitinfer import Codec, CodecError, FeatureSet
from splitinfer.codec.quantize import dequantize, fit, groups, quantize

from .conftest import make_features


def max_step(decoded: FeatureSet, original: FeatureSet) -> float:
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(decoded.tensors, original.tensors))


def test_decode_restores_metadata(features: FeatureSet) -> None:
    out = Codec().decode(Codec(bits=4).encode(features))
    assert out.cut == features.cut
    assert out.layers == features.layers
    assert out.input_shape == features.input_shape
    assert out.model == "c0ffee"
    assert out.frames == features.frames
    assert [t.shape for t in out.tensors] == [t.shape for t in features.tensors]
    assert all(t.dtype == torch.float32 for t in out.tensors)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("layout", ["planes", "bytes"])
def test_error_is_within_half_a_step(bits: int, granularity: str, layout: str) -> None:
    fs = make_features(seed=bits)
    codec = Codec(bits=bits, granularity=granularity, layout=layout, coarse_extra_bits=0)
    out = codec.decode(codec.encode(fs))
    for x, y in zip(fs.tensors, out.tensors):
        g = groups(x, granularity == "channel")
        span = (g.amax(-1).clamp(min=0) - g.amin(-1).clamp(max=0)) / ((1 << bits) - 1)
        err = (groups(y, granularity == "channel") - g).abs().amax(-1)
        assert bool((err <= span * 0.5 * 1.01 + 1e-6).all()), (err / span).max()


def test_zero_is_exact_and_more_bits_means_less_error() -> None:
    fs = make_features()
    zeros = [t.clone() for t in fs.tensors]
    zeros[0][0, :, :4, :4] = 0
    fs = FeatureSet(cut=fs.cut, layers=fs.layers, tensors=tuple(zeros), input_shape=fs.input_shape)
    errors = []
    for bits in (2, 4, 8):
        out = Codec().decode(Codec(bits=bits).encode(fs))
        assert bool((out.tensors[0][0, :, :4, :4] == 0).all())
        errors.append(max_step(out, fs))
    assert errors[0] > errors[1] > errors[2]


def test_coarse_tensors_get_extra_bits() -> None:
    fs = make_features(((1, 8, 16, 16), (1, 8, 8, 8)))
    fine = Codec(bits=2, coarse_extra_bits=0).decode(Codec(bits=2, coarse_extra_bits=0).encode(fs))
    extra = Codec().decode(Codec(bits=2, coarse_extra_bits=1).encode(fs))
    err = lambda out, i: float((out.tensors[i] - fs.tensors[i]).abs().max())  # noqa: E731
    assert err(extra, 0) == pytest.approx(err(fine, 0))  # finest tensor: same 2 bits
    assert err(extra, 1) < 0.7 * err(fine, 1)  # coarser tensor: 3 bits


@pytest.mark.parametrize("bits", [16, 32])
def test_float_passthrough(features: FeatureSet, bits: int) -> None:
    out = Codec().decode(Codec(bits=bits).encode(features))
    for x, y in zip(features.tensors, out.tensors):
        if bits == 32:
            assert torch.equal(x, y)
        else:
            assert torch.equal(x.half().float(), y)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_come_back_in_their_dtype(dtype: torch.dtype) -> None:
    fs = make_features(dtype=dtype)
    out = Codec().decode(Codec(bits=8).encode(fs))
    assert all(t.dtype == dtype for t in out.tensors)
    assert max_step(out, fs) < 0.1


def test_batch_frames_are_quantized_independently() -> None:
    a = make_features(((1, 4, 8, 8),), seed=1)
    b = FeatureSet(cut=a.cut, layers=a.layers, tensors=(a.tensors[0] * 100,), input_shape=a.input_shape)
    batch = FeatureSet(
        cut=a.cut, layers=a.layers, tensors=(torch.cat([a.tensors[0], b.tensors[0]]),), input_shape=a.input_shape
    )
    out = Codec().decode(Codec(bits=4).encode(batch))
    solo = Codec().decode(Codec(bits=4).encode(a))
    assert torch.equal(out.tensors[0][:1], solo.tensors[0])  # the loud frame does not coarsen the quiet one
    assert len(out.frames) == 2


def test_torch_and_numpy_packing_agree() -> None:
    from splitinfer.codec.pack import PLANES, pack, pack_planes, unpack

    q = torch.randint(0, 8, (1001,), dtype=torch.uint8)
    assert (pack_planes(q, 3).numpy() == pack(q, 3, PLANES)).all()
    assert (unpack(pack(q, 3, PLANES), 1001, 3, PLANES) == q.numpy()).all()


def test_nan_is_refused(features: FeatureSet) -> None:
    bad = features.tensors[0].clone()
    bad[0, 0, 0, 0] = float("nan")
    fs = FeatureSet(
        cut=features.cut, layers=features.layers, tensors=(bad, features.tensors[1]), input_shape=features.input_shape
    )
    with pytest.raises(CodecError, match="NaN"):
        Codec().encode(fs)


def test_settings_are_validated() -> None:
    for bad in ({"bits": 1}, {"bits": 9}, {"granularity": "row"}, {"level": 0}, {"clip": 0.2}, {"layout": "x"}):
        with pytest.raises(CodecError):
            Codec(**bad)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="unexpected keyword"):
        Codec(bitz=3)  # type: ignore[call-arg]


def test_quantize_helpers_invert() -> None:
    g = torch.linspace(-0.25, 3.0, 64).reshape(1, 1, 64)
    step, zp = fit(g, 4)
    q = quantize(g, step, zp, 4)
    assert int(q.min()) == 0 and int(q.max()) == 15
    assert float((dequantize(q, step, zp) - g).abs().max()) <= float(step) / 2 + 1e-6


shapes = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 7)), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    shapes=shapes,
    batch=st.integers(1, 3),
    bits=st.sampled_from([2, 3, 4, 5, 6, 7, 8, 16, 32]),
    granularity=st.sampled_from(["channel", "tensor"]),
    layout=st.sampled_from(["planes", "bytes"]),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
    half=st.booleans(),
)
def test_roundtrip_property(
    shapes: list, batch: int, bits: int, granularity: str, layout: str, scale: float, seed: int, half: bool
) -> None:
    fs = make_features([(batch, *s) for s in shapes], seed=seed, dtype=torch.float16 if half else torch.float32)
    fs = FeatureSet(
        cut=fs.cut,
        layers=fs.layers,
        tensors=tuple(t * scale for t in fs.tensors),
        input_shape=fs.input_shape,
        model=fs.model,
        frames=fs.frames,
    )
    codec = Codec(bits=bits, granularity=granularity, layout=layout)
    out = Codec().decode(codec.encode(fs))
    assert out.frames == fs.frames and out.layers == fs.layers
    for x, y in zip(fs.tensors, out.tensors):
        assert y.shape == x.shape and y.dtype == x.dtype
        x, y = x.float(), y.float()
        span = float(x.max().clamp(min=0) - x.min().clamp(max=0))
        tol = span / 3 if bits <= 8 else (span * 1e-3 if bits == 16 else 0.0)
        assert float((x - y).abs().max()) <= tol + 1e-6


def test_any_bytes_like_blob_decodes(features: FeatureSet) -> None:
    blob = Codec(bits=3).encode(features)
    ref = Codec().decode(blob)
    for view in (bytearray(blob), memoryview(blob)):
        out = Codec().decode(view)
        assert all(torch.equal(a, b) for a, b in zip(out.tensors, ref.tensors))
