"""Temporal delta coding: keyframes, deltas, and what a lost frame costs."""

from __future__ import annotations

from typing import List

import pytest
import torch

from splitinfer import Codec, CodecError, FeatureSet

from .conftest import make_features


def clip(n: int, source: str = "cam-1") -> List[FeatureSet]:
    """A slowly changing scene: each frame the previous plus a little noise."""
    base = make_features(((1, 8, 16, 16), (1, 16, 8, 8)), source=source)
    gen = torch.Generator().manual_seed(1)
    frames = []
    tensors = base.tensors
    for k in range(n):
        frames.append(make_features(((1, 8, 16, 16), (1, 16, 8, 8)), source=source, seq=k))
        frames[-1] = FeatureSet(
            cut=base.cut,
            layers=base.layers,
            tensors=tensors,
            input_shape=base.input_shape,
            model=base.model,
            frames=frames[-1].frames,
        )
        tensors = tuple(t + 0.01 * torch.randn(t.shape, generator=gen) for t in tensors)
    return frames


def test_delta_frames_decode_exactly_as_intra_frames_and_are_smaller() -> None:
    frames = clip(6)
    enc, dec = Codec(bits=4, keyframe_interval=3), Codec()
    intra = Codec(bits=4)
    sizes = []
    for k, fs in enumerate(frames):
        blob = enc.encode(fs)
        sizes.append(len(blob))
        out = dec.decode(blob)
        ref = intra.decode(intra.encode(fs))
        if k % 3 == 0:  # keyframes are intra frames
            assert all(torch.equal(a, b) for a, b in zip(out.tensors, ref.tensors))
        err = max(float((a - b).abs().max()) for a, b in zip(out.tensors, fs.tensors))
        assert err < 0.5
    assert sizes[1] < 0.8 * sizes[0] and sizes[2] < 0.8 * sizes[0]
    assert sizes[3] > sizes[2]  # frame 3 is the next keyframe


def test_lost_delta_costs_only_itself() -> None:
    frames = clip(5)
    enc, dec = Codec(bits=3, keyframe_interval=10), Codec()
    blobs = [enc.encode(fs) for fs in frames]
    reference = Codec()
    expected = [reference.decode(b) for b in blobs]
    dec.decode(blobs[0])
    for k in (2, 4):  # frames 1 and 3 lost
        out = dec.decode(blobs[k])
        assert all(torch.equal(a, b) for a, b in zip(out.tensors, expected[k].tensors))


def test_lost_keyframe_refuses_deltas_until_the_next_keyframe() -> None:
    frames = clip(6)
    enc, dec = Codec(bits=4, keyframe_interval=3), Codec()
    blobs = [enc.encode(fs) for fs in frames]
    for k in (1, 2):  # keyframe 0 was lost
        with pytest.raises(CodecError, match="refers to keyframe 0"):
            dec.decode(blobs[k])
    for k in (3, 4, 5):  # recovered at keyframe 3
        out = dec.decode(blobs[k])
        assert max(float((a - b).abs().max()) for a, b in zip(out.tensors, frames[k].tensors)) < 0.5


def test_stale_keyframe_is_not_used() -> None:
    frames = clip(6)
    enc, dec = Codec(bits=4, keyframe_interval=3), Codec()
    blobs = [enc.encode(fs) for fs in frames]
    dec.decode(blobs[0])
    with pytest.raises(CodecError, match=r"refers to keyframe 3, .*\(keyframe 0\)"):
        dec.decode(blobs[4])  # keyframe 3 was lost; keyframe 0 must not be used for it


def test_sources_keep_separate_state() -> None:
    a, b = clip(3, "cam-a"), clip(3, "cam-b")
    enc, dec = Codec(bits=4, keyframe_interval=5), Codec()
    for k in range(3):
        for fs in (a[k], b[k]):
            out = dec.decode(enc.encode(fs))
            assert out.frames[0].source == fs.frames[0].source
            assert max(float((x - y).abs().max()) for x, y in zip(out.tensors, fs.tensors)) < 0.5


def test_reset_forces_a_keyframe() -> None:
    frames = clip(3)
    enc = Codec(bits=4, keyframe_interval=10)
    first = len(enc.encode(frames[0]))
    assert len(enc.encode(frames[1])) < first
    enc.reset("cam-1")
    fresh = Codec()
    fresh.decode(enc.encode(frames[2]))  # a keyframe: decodes without any state


def test_delta_frame_alone_is_refused() -> None:
    frames = clip(2)
    enc = Codec(bits=4, keyframe_interval=4)
    enc.encode(frames[0])
    with pytest.raises(CodecError, match="does not hold"):
        Codec().decode(enc.encode(frames[1]))


def test_zigzag_is_a_bijection_on_wrapped_differences() -> None:
    from splitinfer.codec.delta import unzigzag, zigzag

    for bits in range(2, 9):
        q = torch.randint(0, 1 << bits, (500,), dtype=torch.uint8)
        key = torch.randint(0, 1 << bits, (500,), dtype=torch.uint8)
        code = zigzag(q - key, bits)
        assert int(code.max()) < 1 << bits
        assert torch.equal((unzigzag(code, bits) + key) & ((1 << bits) - 1), q)
        assert int(zigzag(key - key, bits).max()) == 0


def test_batches_of_several_sources_use_deltas() -> None:
    gen = torch.Generator().manual_seed(3)
    enc, dec = Codec(bits=3, keyframe_interval=4), Codec()
    fs = make_features(((2, 8, 16, 16),))
    sizes = []
    for seq in range(3):
        moved = fs.tensors[0] + 0.005 * torch.randn(fs.tensors[0].shape, generator=gen)
        frames = tuple(type(f)(source=f.source, seq=seq) for f in fs.frames)
        step = FeatureSet(cut=fs.cut, layers=fs.layers, tensors=(moved,), input_shape=fs.input_shape, frames=frames)
        blob = enc.encode(step)
        sizes.append(len(blob))
        out = dec.decode(blob)
        assert float((out.tensors[0] - moved).abs().max()) < 0.8  # 3 bits: steps of about 1.0
    assert sizes[1] < 0.8 * sizes[0]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_zigzag_round_trips_without_warnings(bits: int) -> None:
    """Every residue mod 2**bits survives; no deprecated tensor `//` (torch 1.11 warns about it)."""
    import warnings

    from splitinfer.codec.delta import unzigzag, zigzag

    diffs = torch.arange(256, dtype=torch.int16).to(torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = unzigzag(zigzag(diffs, bits), bits)
    assert torch.equal(back, diffs & ((1 << bits) - 1))
