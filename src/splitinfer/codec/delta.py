"""Temporal delta coding: per-source keyframe state, and the zigzag map for symbol differences.

A delta frame carries, per tensor, ``zigzag((q - q_key) mod 2**bits)`` where ``q`` is the frame quantized
with its keyframe's steps and zero points and ``q_key`` the keyframe's symbols. Every delta refers to its
keyframe (not to the previous frame), so a lost delta costs only itself; a lost keyframe makes the decoder
refuse that source's deltas (CodecError) until the next keyframe arrives. The map is a bijection on b-bit
values, so delta frames reproduce exactly the symbols intra coding would give with those steps.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, List, Optional, Tuple, TypeVar

import torch

__all__ = ["EncoderKey", "KeyStore", "Signature", "unzigzag", "zigzag"]

# (model, cut, layers, per-tensor (shape without batch, bits, scheme))
Signature = Tuple[str, int, Tuple[int, ...], Tuple[Tuple[Tuple[int, ...], int, int], ...]]

T = TypeVar("T")


def zigzag(diff: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 ``(q - q_key) mod 2**bits`` to small codes: 0, -1, 1, -2, 2, ... map to 0, 1, 2, 3, 4, ..."""
    half = 1 << (bits - 1)
    d = diff.to(torch.int16) & ((1 << bits) - 1)  # uint8 subtraction wrapped mod 256, not mod 2**bits
    signed = torch.where(d >= half, d - (1 << bits), d)
    return torch.where(signed >= 0, signed * 2, -signed * 2 - 1).to(torch.uint8)


def unzigzag(code: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`zigzag`: codes to ``(q - q_key) mod 2**bits`` (uint8)."""
    c = code.to(torch.int16)
    magnitude = c >> 1  # codes are ≥ 0: a shift, not `//` on tensors (deprecated in torch 1.11)
    signed = torch.where((c & 1) == 0, magnitude, -magnitude - 1)
    return (signed % (1 << bits)).to(torch.uint8)


@dataclass
class EncoderKey:
    """What the encoder remembers of a source's last keyframe."""

    seq: int
    signature: Signature
    symbols: List[torch.Tensor]  # per tensor, [groups, values] uint8 on the tensor's device
    steps: List[torch.Tensor]  # per tensor, [groups] float32
    zps: List[torch.Tensor]
    since: int = 0  # frames sent since (and including) the keyframe


@dataclass
class DecoderKey:
    seq: int
    signature: Signature
    symbols: List[torch.Tensor]  # per tensor, [groups, values] uint8 on the CPU


class KeyStore(Generic[T]):
    """Keyframe state per source, least recently used evicted beyond ``capacity`` sources."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, source: str) -> Optional[T]:
        item = self._items.get(source)
        if item is not None:
            self._items.move_to_end(source)
        return item

    def put(self, source: str, item: T) -> None:
        self._items[source] = item
        self._items.move_to_end(source)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, source: Optional[str] = None) -> None:
        if source is None:
            self._items.clear()
        else:
            self._items.pop(source, None)

    def __len__(self) -> int:
        return len(self._items)
