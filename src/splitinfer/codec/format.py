"""The wire layout: header structs, a bounded reader, and the blob's envelope (magic, version, checksum).

Every multi-byte field is little-endian (``struct`` formats start with ``<``). docs/wire-format.md draws the
layout byte by byte; keep the two in step. Nothing here allocates more than the bytes it was given.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import List, Tuple, Union

import numpy as np

from ..errors import CodecError

__all__ = [
    "DTYPES",
    "FLAG_DELTA",
    "FLAG_ZSTD",
    "FRAME",
    "KIND_DELTA",
    "KIND_INTRA",
    "KIND_KEY",
    "MAGIC",
    "PREAMBLE",
    "SCHEME_CHANNEL",
    "SCHEME_FLOAT",
    "SCHEME_TENSOR",
    "TENSOR",
    "VERSION",
    "VERSIONS",
    "VERSION_WEIGHTED",
    "FrameHeader",
    "Reader",
    "TensorHeader",
    "seal",
    "write_str",
]

MAGIC = b"SPIF"
VERSION = 1  # affine quantization per channel or tensor, bit planes, zstd (codec.py)
VERSION_WEIGHTED = 2  # sensitivity-weighted quantization from a calibration table, range-coded (weighted.py)
VERSIONS = (VERSION, VERSION_WEIGHTED)

FLAG_ZSTD = 1  # payload is one zstd frame (version 1 only)
FLAG_DELTA = 2  # at least one frame is a keyframe or a delta frame (the decoder keeps state)
KNOWN_FLAGS = {VERSION: FLAG_ZSTD | FLAG_DELTA, VERSION_WEIGHTED: FLAG_DELTA}

# magic, version, flags, frames, tensors, cut, input height, input width
PREAMBLE = struct.Struct("<4sBBHHHHH")
# seq, timestamp, orig height, orig width, ratio, pad x, pad y, kind, reference seq
FRAME = struct.Struct("<QdIIdddBQ")
# layer, dtype, scheme, bits, layout, ndim
TENSOR = struct.Struct("<HBBBBB")
U32 = struct.Struct("<I")
CHECKSUM = U32

KIND_INTRA = 0  # stands alone
KIND_KEY = 1  # stands alone, and later delta frames of its source refer to it
KIND_DELTA = 2  # symbols are zigzagged differences from the keyframe ``ref_seq`` of the same source
KINDS = (KIND_INTRA, KIND_KEY, KIND_DELTA)

SCHEME_FLOAT = 0  # raw fp16 (bits 16) or fp32 (bits 32) values
SCHEME_TENSOR = 1  # uniform affine, one step/zero point per tensor and frame
SCHEME_CHANNEL = 2  # uniform affine, one step/zero point per channel and frame
SCHEMES = (SCHEME_FLOAT, SCHEME_TENSOR, SCHEME_CHANNEL)

DTYPES = ("float32", "float16", "bfloat16")  # the code is the index

MAX_STR = 255
MAX_NDIM = 8
MAX_FRAMES = 4096
MAX_TENSORS = 256
MAX_DIM = 2**31 - 1


@dataclass(frozen=True)
class FrameHeader:
    source: str
    seq: int
    timestamp: float
    orig_shape: Tuple[int, int]
    ratio: float
    pad: Tuple[float, float]
    kind: int
    ref_seq: int


@dataclass(frozen=True)
class TensorHeader:
    layer: int
    dtype: int
    scheme: int
    bits: int
    layout: int
    shape: Tuple[int, ...]
    step: np.ndarray  # float16, one per group (empty for SCHEME_FLOAT)
    zp: np.ndarray  # uint8, one per group

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_groups(self) -> int:
        if self.scheme == SCHEME_FLOAT:
            return 0
        if self.scheme == SCHEME_CHANNEL and len(self.shape) >= 2:
            return self.shape[0] * self.shape[1]
        return self.shape[0]


def write_str(out: List[bytes], text: str, what: str) -> None:
    raw = text.encode("utf-8")
    if len(raw) > MAX_STR:
        raise CodecError(f"codec: {what} is {len(raw)} bytes in UTF-8; at most {MAX_STR} fit the wire format")
    out.append(bytes((len(raw),)))
    out.append(raw)


def seal(parts: List[bytes]) -> bytes:
    """Join the parts and append the CRC-32 of everything before it."""
    crc = 0
    for part in parts:  # one pass and one join: no copy of the body just to append the checksum
        crc = zlib.crc32(part, crc)
    return b"".join([*parts, CHECKSUM.pack(crc & 0xFFFFFFFF)])


class Reader:
    """Reads fields off a blob, raising CodecError (never IndexError/struct.error) when it runs short."""

    def __init__(self, data: Union[bytes, memoryview]) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise CodecError(
                f"codec: truncated blob: {what} needs {n} bytes at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> Tuple:
        return fmt.unpack(self.take(fmt.size, what))

    def string(self, what: str) -> str:
        (n,) = self.take(1, what)
        try:
            return bytes(self.take(n, what)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"codec: {what} is not valid UTF-8") from exc

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * itemsize, what), dtype=np.dtype(dtype).newbyteorder("<")).copy()


def version_of(data: Union[bytes, memoryview]) -> int:
    """The version byte of a blob that :func:`open_envelope` accepted."""
    return data[4]


def open_envelope(data: bytes) -> Tuple[int, memoryview]:
    """Check type, magic, version and checksum; return (flags, body without the checksum, not copied).

    The version is the body's fifth byte (:func:`version_of`); unknown flags are refused per version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"codec: expected bytes, got {type(data).__name__}")
    data = bytes(data)  # no copy for bytes; a private copy of a bytearray the caller might change
    if len(data) < PREAMBLE.size + CHECKSUM.size:
        raise CodecError(f"codec: blob of {len(data)} bytes is too short to be a feature frame")
    magic, version, flags = struct.unpack_from("<4sBB", data)
    if magic != MAGIC:
        raise CodecError(f"codec: not a splitinfer feature frame (magic {magic!r}, expected {MAGIC!r})")
    if version not in VERSIONS:
        raise CodecError(f"codec: wire format version {version} is not supported (this build reads "
                         f"{' and '.join(str(v) for v in VERSIONS)})")
    body, (crc,) = memoryview(data)[: -CHECKSUM.size], CHECKSUM.unpack(data[-CHECKSUM.size :])
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise CodecError("codec: checksum mismatch: the blob was corrupted or truncated in transit")
    if flags & ~KNOWN_FLAGS[version]:
        raise CodecError(f"codec: unknown flags 0x{flags:02x} (a newer encoder?)")
    return flags, body
