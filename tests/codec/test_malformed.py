"""Malformed input: every failure is a CodecError with a message, never another exception or a huge allocation."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
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


def flipped_or_truncated(data: st.DataObject, blob: bytes) -> bytes:
    """``blob`` with one bit flipped, or cut short: either way, no longer a valid frame."""
    out = bytearray(blob)
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, len(out) * 8 - 1))
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)
    return bytes(out[: data.draw(st.integers(0, len(out) - 1))])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flips_and_truncations_raise_codec_error(data: st.DataObject) -> None:
    with pytest.raises(CodecError):
        Codec().decode(flipped_or_truncated(data, BLOB))


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


# ------------------------------------------------------------------------------------------------ version 2


def _v2() -> tuple:  # type: ignore[type-arg]
    from .test_weighted import table_for

    fs = make_features()
    table = table_for(fs)
    return table, Codec(table=table, quality=70).encode(fs)


TABLE2, BLOB2 = _v2()


def _v2_header_end(blob: bytes) -> int:
    """Offset of the first stream (everything before it is header): one frame, two tensors."""
    from splitinfer.codec import format as wire
    from splitinfer.codec.weighted import FRAME, TENSOR

    body = blob[:-4]
    r = wire.Reader(body)
    r.unpack(wire.PREAMBLE, "preamble")
    r.string("model")
    r.take(32, "digest")
    r.string("source")
    r.unpack(FRAME, "frame")
    lengths = []
    for _ in range(2):
        _, _, _, ndim = r.unpack(TENSOR, "tensor")
        r.array("u4", ndim, "shape")
        lengths.append(r.unpack(wire.U32, "length")[0])
    assert r.pos + sum(lengths) == len(body)
    return r.pos


def test_v2_truncated_and_stray_bytes_behind_a_valid_checksum() -> None:
    body = BLOB2[:-4]
    for cut in (16, 40, len(body) // 2, len(body) - 1):
        with pytest.raises(CodecError, match=r"truncated|stray|stream|too short"):
            Codec(table=TABLE2).decode(reseal(body[:cut]))
    with pytest.raises(CodecError, match="stray"):
        Codec(table=TABLE2).decode(reseal(body + b"\x00"))


def test_v2_unknown_flags_and_zstd_flag() -> None:
    for flag in (0x01, 0x80):
        body = bytearray(BLOB2[:-4])
        body[5] |= flag
        with pytest.raises(CodecError, match="flags"):
            Codec(table=TABLE2).decode(reseal(bytes(body)))


def test_v2_absurd_shapes_are_refused_before_allocating() -> None:
    """A tensor record claiming 2**31-wide rows, with its stream of a few bytes."""
    body = bytearray(BLOB2[:-4])
    end = _v2_header_end(BLOB2)
    # the second tensor's shape (1, 16, 8, 8) sits 4 + 16 bytes before the header's end; make it (1, 16, 2**31-1, 8)
    struct.pack_into("<I", body, end - 4 - 8, 2**31 - 1)
    with pytest.raises(CodecError, match="max_values"):
        Codec(table=TABLE2).decode(reseal(bytes(body)))
    struct.pack_into("<I", body, end - 4 - 8, 0)
    with pytest.raises(CodecError, match="shape"):
        Codec(table=TABLE2).decode(reseal(bytes(body)))


def test_v2_stream_lengths_are_bounded() -> None:
    body = bytearray(BLOB2[:-4])
    end = _v2_header_end(BLOB2)
    struct.pack_into("<I", body, end - 4, 0xFFFFFFFF)
    with pytest.raises(CodecError, match=r"max_bytes|truncated"):
        Codec(table=TABLE2).decode(reseal(bytes(body)))
    with pytest.raises(CodecError, match="max_bytes"):
        Codec(table=TABLE2, max_bytes=10).decode(BLOB2)


def test_v2_bad_step_and_scheme() -> None:
    from splitinfer.codec.weighted import FRAME

    body = bytearray(BLOB2[:-4])
    frame_at = 16 + 1 + len("c0ffee") + 32 + 1 + len("cam-1")
    for delta in (0.0, -1.0, float("nan"), float("inf"), 1e30):
        struct.pack_into("<f", body, frame_at + FRAME.size - 4, delta)
        with pytest.raises(CodecError, match="quantization step"):
            Codec(table=TABLE2).decode(reseal(bytes(body)))
    body = bytearray(BLOB2[:-4])
    tensor_at = frame_at + FRAME.size
    body[tensor_at + 3] = 2  # scheme 2 (version 1's per channel) in a version-2 blob
    with pytest.raises(CodecError, match="scheme"):
        Codec(table=TABLE2).decode(reseal(bytes(body)))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_v2_bit_flips_and_truncations_raise_codec_error(data: st.DataObject) -> None:
    with pytest.raises(CodecError):
        Codec(table=TABLE2).decode(flipped_or_truncated(data, BLOB2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_v2_resealed_corruption_never_escapes_as_another_error(data: st.DataObject) -> None:
    """Corrupt header *and* streams, fix the checksum: only CodecError, and bounded output, ever."""
    body = bytearray(BLOB2[:-4])
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))] + data.draw(st.binary(max_size=16))
    try:
        out = Codec(table=TABLE2, max_values=1 << 16).decode(reseal(bytes(body)))
    except CodecError:
        return
    assert out.numel <= 1 << 16
    assert all(bool(torch.isfinite(t).all()) for t in out.tensors)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_v2_garbage_after_a_valid_header_raises_codec_error(tail: bytes) -> None:
    end = _v2_header_end(BLOB2)
    with pytest.raises(CodecError):
        Codec(table=TABLE2).decode(reseal(BLOB2[:end] + tail))
