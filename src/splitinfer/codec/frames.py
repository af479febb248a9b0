"""Offload's payload: a batch of letterboxed frames compressed with an image codec (JPEG, WebP, AVIF), with what
the tail needs to map boxes back. Only heads the operator allowed to offload ever make one.

Layout (little-endian)::

    magic  b"SPIM"  version u8 (1)  format u8 (0 jpeg, 1 webp, 2 avif)  frames u16  height u16  width u16
    per frame: source (u8 length + UTF-8), seq u64, timestamp f64, orig height u32, orig width u32,
               ratio f64, pad x f64, pad y f64, image length u32, the encoded image
    CRC-32 of everything before it (u32)

Decoding is bounded like the feature codec's: the header's sizes are checked before anything is decoded, every
image's own header must declare exactly the announced format and size before its pixels are decoded (so an
image bomb is refused unread), and any malformed input is one CodecError. JPEG and WebP go through OpenCV,
AVIF through Pillow where its build has AVIF (:func:`available`).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any, List, Sequence, Tuple

import numpy as np

from ..errors import CodecError
from ..features import FrameMeta
from .format import Reader, write_str

__all__ = ["FORMATS", "MAGIC", "available", "decode_frames", "encode_frames", "is_frames"]

MAGIC = b"SPIM"
VERSION = 1
FORMATS = ("jpeg", "webp", "avif")
_PIL_NAMES = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
_HEAD = struct.Struct("<4sBBHHH")
_FRAME = struct.Struct("<QdIIddd")
_U32 = struct.Struct("<I")
MAX_SIDE = 4096
MAX_IMAGE_BYTES = 32 * 1024 * 1024


def is_frames(blob: bytes) -> bool:
    return bytes(blob[:4]) == MAGIC


def available(fmt: str) -> bool:
    """Whether this machine can encode and decode ``fmt`` (AVIF needs a Pillow built with it)."""
    if fmt in ("jpeg", "webp"):
        return True
    if fmt == "avif":
        try:
            from PIL import features

            return bool(features.check("avif"))
        except (ImportError, ValueError):
            return False
    return False


def encode_frames(images: Sequence[Any], frames: Sequence[FrameMeta], *, fmt: str = "webp",
                  quality: int = 80) -> bytes:
    """Compress letterboxed BGR uint8 frames (all the same size) into one payload."""
    if fmt not in FORMATS:
        raise CodecError(f"image codec: format must be one of {FORMATS}, got {fmt!r}")
    if not available(fmt):
        raise CodecError(f"image codec: {fmt} is not available here (Pillow without {fmt.upper()} support)")
    if not images or len(images) != len(frames):
        raise CodecError(f"image codec: {len(images)} images for {len(frames)} frame records")
    height, width = int(images[0].shape[0]), int(images[0].shape[1])
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or any(im.shape[:2] != (height, width)
                                                                       for im in images):
        raise CodecError("image codec: the frames must share one size of at most 4096 × 4096")
    out: List[bytes] = [_HEAD.pack(MAGIC, VERSION, FORMATS.index(fmt), len(images), height, width)]
    for image, meta in zip(images, frames):
        data = _encode_one(image, fmt, quality)
        write_str(out, meta.source, "frame source")
        out.append(_FRAME.pack(meta.seq, meta.timestamp, meta.orig_shape[0], meta.orig_shape[1], meta.ratio,
                               meta.pad[0], meta.pad[1]))
        out.append(_U32.pack(len(data)))
        out.append(data)
    body = b"".join(out)
    return body + _U32.pack(zlib.crc32(body) & 0xFFFFFFFF)


def _encode_one(image: Any, fmt: str, quality: int) -> bytes:
    if fmt == "avif":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image[..., ::-1])).save(buffer, format="AVIF", quality=quality, speed=10)
        return buffer.getvalue()
    import cv2

    flag = cv2.IMWRITE_JPEG_QUALITY if fmt == "jpeg" else cv2.IMWRITE_WEBP_QUALITY
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".webp", image, [int(flag), int(quality)])
    if not ok:
        raise CodecError(f"image codec: {fmt} encoding failed")
    return data.tobytes()


def decode_frames(blob: bytes, *, max_frames: int = 16, expect: Tuple[int, int] = (0, 0)
                  ) -> Tuple[List[np.ndarray], List[FrameMeta], str]:
    """(RGB uint8 images, frame records, format) from a payload; ``expect`` (height, width) when the receiver
    knows the size it takes. CodecError on anything malformed."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < _HEAD.size + _U32.size:
        raise CodecError("image codec: too short to be a frames payload")
    data = bytes(blob)
    body, (crc,) = data[:-4], _U32.unpack(data[-4:])
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise CodecError("image codec: checksum mismatch: corrupted or truncated in transit")
    r = Reader(body)
    magic, version, code, count, height, width = r.unpack(_HEAD, "header")
    if magic != MAGIC or version != VERSION:
        raise CodecError(f"image codec: not a version-{VERSION} frames payload")
    if code >= len(FORMATS):
        raise CodecError(f"image codec: unknown format {code}")
    fmt = FORMATS[code]
    if not 1 <= count <= max_frames:
        raise CodecError(f"image codec: {count} frames (1..{max_frames} allowed)")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or (any(expect) and (height, width) != expect):
        raise CodecError(f"image codec: frames of {height} × {width}, expected {expect[0]} × {expect[1]}")
    images, frames = [], []
    for _ in range(count):
        source = r.string("frame source")
        seq, ts, oh, ow, ratio, px, py = r.unpack(_FRAME, "frame record")
        (size,) = r.unpack(_U32, "image length")
        if size > MAX_IMAGE_BYTES:
            raise CodecError(f"image codec: a {size}-byte image is over the limit")
        images.append(_decode_one(bytes(r.take(size, "image")), fmt, height, width))
        frames.append(FrameMeta(source, seq, ts, (oh, ow), ratio, (px, py)))
    if r.pos != len(body):
        raise CodecError("image codec: stray bytes after the frames")
    return images, frames, fmt


def _decode_one(data: bytes, fmt: str, height: int, width: int) -> np.ndarray:
    """Its header first (format, size), then the pixels: an image bomb is refused before it is decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_NAMES[fmt]]) as im:
            if im.size != (width, height):
                raise CodecError(f"image codec: an image of {im.size[1]} × {im.size[0]}, announced {height} × "
                                 f"{width}")
            return np.asarray(im.convert("RGB"))
    except CodecError:
        raise
    except Exception as exc:  # a decoder (or a plugin patched in by another library) failing on untrusted bytes
        raise CodecError(f"image codec: not a decodable {fmt} image ({type(exc).__name__}: {exc})") from exc
