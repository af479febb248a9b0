"""The seed system's codec, reimplemented faithfully as the speed baseline.

Per-tensor min/max 4-bit quantization; the 4-bit values are packed two to a byte one at a time in a Python
loop; the result is zstd-compressed. Decoding unpacks one value at a time the same way. Only for benchmarks.
"""

from __future__ import annotations

import struct
from typing import List, Sequence, Tuple

import torch
import zstandard

__all__ = ["seed_decode", "seed_encode"]


def seed_encode(tensors: Sequence[torch.Tensor], level: int = 3) -> bytes:
    out = bytearray(struct.pack("<I", len(tensors)))
    for t in tensors:
        lo, hi = float(t.min()), float(t.max())
        scale = (hi - lo) / 15 or 1.0
        q = ((t - lo) / scale).round().clamp(0, 15).to(torch.uint8).flatten().tolist()
        out += struct.pack("<B", t.dim()) + struct.pack(f"<{t.dim()}I", *t.shape) + struct.pack("<ff", lo, scale)
        packed = bytearray()
        for i in range(0, len(q), 2):  # one value at a time, as the seed did
            low = q[i]
            high = q[i + 1] if i + 1 < len(q) else 0
            packed.append(low | (high << 4))
        out += struct.pack("<I", len(packed)) + packed
    return zstandard.ZstdCompressor(level=level).compress(bytes(out))


def seed_decode(blob: bytes) -> List[torch.Tensor]:
    data = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 30)
    (count,) = struct.unpack_from("<I", data)
    pos = 4
    tensors: List[torch.Tensor] = []
    for _ in range(count):
        (ndim,) = struct.unpack_from("<B", data, pos)
        shape: Tuple[int, ...] = struct.unpack_from(f"<{ndim}I", data, pos + 1)
        pos += 1 + 4 * ndim
        lo, scale = struct.unpack_from("<ff", data, pos)
        (size,) = struct.unpack_from("<I", data, pos + 8)
        pos += 12
        n = 1
        for d in shape:
            n *= d
        values: List[float] = []
        for byte in data[pos : pos + size]:  # one value at a time, as the seed did
            values.append((byte & 15) * scale + lo)
            values.append((byte >> 4) * scale + lo)
        pos += size
        tensors.append(torch.tensor(values[:n], dtype=torch.float32).reshape(shape))
    return tensors
