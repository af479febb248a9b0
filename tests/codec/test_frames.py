"""Offload's payload: letterboxed frames in an image codec, decoded only within announced bounds."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitinfer.codec.frames import _FRAME, _HEAD, MAGIC, available, decode_frames, encode_frames, is_frames
from splitinfer.errors import CodecError
from splitinfer.features import FrameMeta

FRAMES = [FrameMeta(source="cam-1", seq=k, timestamp=1.7e9 + k, orig_shape=(480, 640), ratio=0.5, pad=(0.0, 40.0))
          for k in range(2)]


def images(n: int = 2, size: int = 64) -> list:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    return [np.kron(base, np.ones((8, 8, 1), dtype=np.uint8)) for _ in range(n)]  # blocky: compresses well


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_frames_round_trip_with_their_records(fmt: str) -> None:
    if not available(fmt):
        pytest.skip(f"{fmt} is not available in this Pillow")
    blob = encode_frames(images(), FRAMES, fmt=fmt, quality=90)
    assert is_frames(blob)
    decoded, frames, got = decode_frames(blob, expect=(64, 64))
    assert got == fmt and frames == FRAMES
    for image, original in zip(decoded, images()):
        assert image.shape == (64, 64, 3)
        assert np.abs(image.astype(int) - original[..., ::-1].astype(int)).mean() < 12  # RGB out, lossy


def _blob_with_image(data: bytes, *, height: int = 64, width: int = 64, fmt: int = 0) -> bytes:
    body = _HEAD.pack(MAGIC, 1, fmt, 1, height, width) + bytes([5]) + b"cam-1"
    body += _FRAME.pack(0, 0.0, 1, 1, 1.0, 0.0, 0.0) + struct.pack("<I", len(data)) + data
    return body + struct.pack("<I", zlib.crc32(body))


def test_an_image_bomb_is_refused_before_it_is_decoded() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000)).save(buffer, format="JPEG")  # 8000 × 8000 announced inside
    with pytest.raises(CodecError, match="announced 64 × 64"):
        decode_frames(_blob_with_image(buffer.getvalue()))


def test_the_announced_size_must_be_the_expected_one() -> None:
    blob = encode_frames(images(), FRAMES, fmt="jpeg")
    with pytest.raises(CodecError, match="expected 320 × 320"):
        decode_frames(blob, expect=(320, 320))


def test_an_image_of_another_format_is_refused() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    with pytest.raises(CodecError, match="not a decodable jpeg"):
        decode_frames(_blob_with_image(buffer.getvalue()))


def test_too_many_frames_are_refused() -> None:
    blob = encode_frames(images(3), FRAMES + FRAMES[:1], fmt="jpeg")
    with pytest.raises(CodecError, match="3 frames"):
        decode_frames(blob, max_frames=2)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=600), st.integers(0, 255))
def test_garbage_and_bit_flips_raise_only_codec_errors(junk: bytes, position: int, flip: int) -> None:
    blob = bytearray(encode_frames(images(1), FRAMES[:1], fmt="jpeg"))
    blob[position % len(blob)] ^= flip or 1
    body = bytes(blob[:-4])
    resealed = body + struct.pack("<I", zlib.crc32(body))  # past the checksum: the parser itself is fuzzed
    for candidate in (bytes(blob), resealed, junk, MAGIC + junk, bytes(blob[: position % len(blob)])):
        with contextlib.suppress(CodecError):
            decode_frames(candidate)
