"""Malformed input: every failure is a CodecError with a message, never another exception or a huge allocation."""

from __future__ import annotations

import struct
import zlib

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitinfer import Codec, CodecError, FeatureSet

from .conftest import make_features

BLOB = Codec(bits=3).encode(make_features())


def reseal(body: bytes) -> bytes:
    """A blob with a valid checksum around ``body``, to reach the checks behind the checksum."""
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"SPIF", "too short"),
        (b"\x00" * 64, "magic"),
        (b"GIF89a" + bytes(64), "magic"),
        (BLOB[:4] + bytes([99]) + BLOB[5:], "version 99"),
        (BLOB[:-1], "checksum"),
        (BLOB[:-10] + BLOB[-9:], "checksum"),
        (BLOB + b"\x00", "checksum"),
    ],
)
def test_broken_envelopes(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        Codec().decode(data)


def test_not_bytes() -> None:
    with pytest.raises(CodecError, match="expected bytes"):
        Codec().decode("SPIF")  # type: ignore[arg-type]


def test_truncated_body_behind_a_valid_checksum() -> None:
    body = BLOB[:-4]
    for cut in (12, len(body) // 2, len(body) - 1):
        with pytest.raises(CodecError, match=r"truncated|stray|payload|too short"):
            Codec().decode(reseal(body[:cut]))


def test_unknown_flags() -> None:
    body = bytearray(BLOB[:-4])
    body[5] |= 0x80
    with pytest.raises(CodecError, match="flags"):
        Codec().decode(reseal(bytes(body)))


def _absurd_shape_blob(dim: int) -> bytes:
    """One tensor of shape (1, dim, dim, dim) with a tiny payload: a lie about size."""
    head = struct.pack("<4sBBHHHHH", b"SPIF", 1, 1, 1, 1, 3, 64, 64) + b"\x00"
    frame = b"\x00" + struct.pack("<QdIIdddBQ", 0, 0.0, 1, 1, 1.0, 0.0, 0.0, 0, 0)
    tensor = struct.pack("<HBBBBB", 1, 0, 1, 2, 0, 4) + struct.pack("<4I", 1, dim, dim, dim)
    tensor += struct.pack("<e", 1.0) + b"\x00"
    payload = zstandard.ZstdCompressor().compress(b"\x00" * 16)
    return reseal(head + frame + tensor + struct.pack("<I", len(payload)) + payload)


def test_absurd_shapes_are_refused_before_allocating() -> None:
    with pytest.raises(CodecError, match="max_values"):
        Codec().decode(_absurd_shape_blob(2**20))
    with pytest.raises(CodecError, match="max_values"):
        Codec(max_values=1000).decode(_absurd_shape_blob(11))
    with pytest.raises(CodecError, match="payload declares 16 bytes, its tensors need 250"):
        Codec().decode(_absurd_shape_blob(10))  # small enough, but the payload is short


def test_decompression_bomb_is_bounded() -> None:
    # a tiny blob claiming a small tensor, whose zstd payload expands to 64 MiB of zeros
    fs = make_features(((1, 2, 4, 4),))
    good = Codec(bits=8, layout="bytes").encode(fs)
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 << 20))
    body = good[:-4]
    size_at = len(body) - _payload_len(good) - 4
    forged = reseal(body[:size_at] + struct.pack("<I", len(bomb)) + bomb)
    with pytest.raises(CodecError, match="declares 67108864 bytes"):
        Codec().decode(forged)
    # the same bomb without a declared size (streamed): still bounded by what the tensors need
    streamed = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"\x00" * (64 << 20))
    forged = reseal(body[:size_at] + struct.pack("<I", len(streamed)) + streamed)
    with pytest.raises(CodecError, match="payload holds 33 bytes, its tensors need 32"):
        Codec().decode(forged)


def test_payload_short_of_its_declared_size() -> None:
    # the frame declares exactly the size the tensors need (the one-call path), but its blocks end early
    fs = make_features(((1, 2, 4, 4),))
    good = Codec(bits=8, layout="bytes").encode(fs)
    body = good[:-4]
    size_at = len(body) - _payload_len(good) - 4
    short = zstandard.ZstdCompressor(level=1).compress(bytes(32))
    assert zstandard.frame_content_size(short) == 32
    forged = reseal(body[:size_at] + struct.pack("<I", len(short) - 3) + short[:-3])
    with pytest.raises(CodecError, match="does not decompress"):
        Codec().decode(forged)


def _payload_len(blob: bytes) -> int:
    # the payload length field sits just before the payload; find it by trying every offset
    body = blob[:-4]
    for at in range(len(body) - 4, 0, -1):
        (n,) = struct.unpack_from("<I", body, at)
        if at + 4 + n == len(body):
            return n
    raise AssertionError("no payload length found")


def test_max_bytes_limits_the_payload() -> None:
    with pytest.raises(CodecError, match="max_bytes"):
        Codec(max_bytes=100).decode(BLOB)


def test_inconsistent_layers_are_refused() -> None:
    fs = make_features()
    body = bytearray(Codec(bits=4).encode(fs)[:-4])
    # cut (offset 10) set to 1: the layers are no longer before the cut
    struct.pack_into("<H", body, 10, 1)
    with pytest.raises(CodecError, match="inconsistent"):
        Codec().decode(reseal(bytes(body)))


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    fs = make_features()
    long_model = FeatureSet(
        cut=fs.cut, layers=fs.layers, tensors=fs.tensors, input_shape=fs.input_shape, model="x" * 300
    )
    with pytest.raises(CodecError, match="model fingerprint"):
        Codec().encode(long_model)
    huge_input = FeatureSet(cut=fs.cut, layers=fs.layers, tensors=fs.tensors, input_shape=(70000, 64))
    with pytest.raises(CodecError, match="does not fit"):
        Codec().encode(huge_input)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_garbage_raises_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        Codec().decode(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flips_and_truncations_raise_codec_error(data: st.DataObject) -> None:
    blob = bytearray(BLOB)
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, len(blob) * 8 - 1))
        blob[bit // 8] ^= 1 << (bit % 8)
    else:
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    with pytest.raises(CodecError):
        Codec().decode(bytes(blob))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_resealed_corruption_never_escapes_as_another_error(data: st.DataObject) -> None:
    """Flip header bytes *and* fix the checksum: the parser's own bounds must hold."""
    body = bytearray(BLOB[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, min(len(body) - 1, 400)))
        body[at] = data.draw(st.integers(0, 255))
    try:
        out = Codec(max_values=1 << 16).decode(reseal(bytes(body)))
    except CodecError:
        return
    assert out.numel <= 1 << 16
