from __future__ import annotations

import numpy as np
import pytest
import torch

from splitinfer.codec.pack import BYTES, PLANES, pack, pack_planes, packed_size, unpack


def reference_planes(symbols: np.ndarray, bits: int) -> np.ndarray:
    """The layout by its definition: plane p holds bit p of every symbol, 8 a byte, first symbol in the MSB."""
    return np.concatenate([np.packbits((symbols >> p) & 1) for p in range(bits)])


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1001, 4096])
def test_planes_match_the_definition_and_invert(bits: int, n: int) -> None:
    q = torch.randint(0, 1 << bits, (n,), dtype=torch.uint8, generator=torch.Generator().manual_seed(n + bits))
    packed = pack(q, bits, PLANES)
    assert packed.dtype == np.uint8 and packed.size == packed_size(n, bits, PLANES)
    assert (packed == reference_planes(q.numpy(), bits)).all()
    assert (pack_planes(q, bits).numpy() == packed).all()
    out = unpack(packed, n, bits, PLANES)
    assert out.dtype == np.uint8 and (out == q.numpy()).all()


def test_every_symbol_pattern_unpacks() -> None:
    # all 2**16 byte pairs of two planes, plus a third plane: every bit pattern of every plane position
    lo, hi = np.divmod(np.arange(1 << 16), 256)
    planes = np.stack([lo, hi, lo ^ hi]).astype(np.uint8)
    out = unpack(planes.reshape(-1), 8 << 16, 3, PLANES)
    bits = np.unpackbits(planes, axis=1)
    assert (out == bits[0] | bits[1] << 1 | bits[2] << 2).all()


def test_bytes_layout_is_the_symbols() -> None:
    q = torch.arange(0, 200, dtype=torch.uint8)
    assert (unpack(pack(q, 8, BYTES), 200, 8, BYTES) == q.numpy()).all()
