"""The centred quantizer and the context-adaptive range coder of wire format 2, native or pure Python.

``native`` is the C module ``splitinfer.codec._arith`` (portable C, built by ``pip install`` on every architecture
with a C compiler) unless it was not built or ``SPLITINFER_ARITH=0``; otherwise every function here runs its
pure-Python/numpy twin, which produces the same bytes and values (tests/codec/test_arith.py compares them) and is
far slower (seconds a frame for the coder). _arith.c describes the coder: what it codes, with which contexts.

Symbols are int16 arrays ``[groups, height, width]`` (a group is one channel of one frame); the coder's streams
and everything the decoder does are bounded by the shape it is given, never by the bytes it reads.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from ..errors import CodecError

__all__ = ["K_UNARY", "QMAX", "SYMBOL_MAX", "decode", "dequantize", "encode", "native", "quantize", "status"]

try:
    from . import _arith  # type: ignore[attr-defined]
except ImportError:  # not built: no C compiler when it was installed
    _arith = None

_WANTED = os.environ.get("SPLITINFER_ARITH", "1").strip() != "0"
native: Optional[Any] = _arith if (_arith is not None and _WANTED) else None

QMAX = 16383  # the quantizer's symbols lie in [-QMAX, QMAX]
SYMBOL_MAX = 32767  # the coder's (a delta frame codes q - q_key)
K_UNARY = 14
MAX_EG = 15
PROB_BITS = 15
PROB_ONE = 1 << PROB_BITS
FAST, SLOW = 4, 7
TOP = 1 << 24
MASK32 = 0xFFFFFFFF
# context offsets in one flat table, in _arith.c's order: group 2, row 3, zero 27, sign 9, magnitude 7 x 4
GROUP, ROW, ZERO, SIGN, MAG = 0, 2, 5, 32, 41
N_CONTEXTS = 69


def status() -> str:
    """One line for logs and benchmarks: which coder runs here."""
    if native is not None:
        return "C range coder"
    if _arith is None:
        return "pure-Python range coder (the C module is not built)"
    return "pure-Python range coder (SPLITINFER_ARITH=0)"


# ---------------------------------------------------------------------------------------------- quantizer


def quantize(x: np.ndarray, mean: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """int16 ``clamp(floor((x - mean) * inv + 0.5), -QMAX, QMAX)`` of float32 ``x`` ``[groups, n]`` (per-group
    float32 ``mean``/``inv``), every operation rounded to float32. NaN or infinity raises CodecError."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    mean = np.ascontiguousarray(mean, dtype=np.float32)
    inv = np.ascontiguousarray(inv, dtype=np.float32)
    if native is not None:
        out = np.empty(x.shape, dtype=np.int16)
        finite = native.quantize(x, mean, inv, x.shape[1] if x.ndim == 2 else 0, QMAX, out)
    else:
        finite = bool(np.isfinite(x).all())
        with np.errstate(invalid="ignore", over="ignore"):
            t = (x - mean[:, None]) * inv[:, None] + np.float32(0.5)
            out = np.clip(np.floor(np.nan_to_num(t, nan=0.0)), -QMAX, QMAX).astype(np.int16)
    if not finite:
        raise CodecError("codec: cannot quantize a tensor holding NaN or infinity")
    return out


def dequantize(q: np.ndarray, mean: np.ndarray, step: np.ndarray) -> np.ndarray:
    """float32 ``q * step + mean`` of int16 ``q`` ``[groups, n]`` (per-group float32 ``mean``/``step``)."""
    q = np.ascontiguousarray(q, dtype=np.int16)
    mean = np.ascontiguousarray(mean, dtype=np.float32)
    step = np.ascontiguousarray(step, dtype=np.float32)
    if native is not None:
        out = np.empty(q.shape, dtype=np.float32)
        native.dequantize(q, mean, step, q.shape[1] if q.ndim == 2 else 0, out)
        return out
    return q.astype(np.float32) * step[:, None] + mean[:, None]


# ---------------------------------------------------------------------------------------------- coder


def encode(q: np.ndarray) -> bytes:
    """One stream coding int16 symbols ``q`` ``[groups, height, width]`` (``|q| <= SYMBOL_MAX``)."""
    q = np.ascontiguousarray(q, dtype=np.int16)
    if q.ndim != 3 or q.shape[1] < 1 or q.shape[2] < 1:
        raise CodecError(f"codec: the coder takes [groups, height, width] symbols, got shape {q.shape}")
    if native is not None:
        try:
            return bytes(native.encode(q, *q.shape))
        except ValueError as exc:  # the C coder checks the symbols in the pass it makes anyway
            raise CodecError(f"codec: {exc}") from exc
    if q.size and int(q.min()) < -SYMBOL_MAX:
        raise CodecError("codec: encode: a symbol is -32768 (|symbol| must be <= 32767)")
    return _py_encode(q)


def decode(data: Union[bytes, memoryview], shape: Tuple[int, int, int], limit: int = SYMBOL_MAX) -> np.ndarray:
    """The int16 symbols ``[groups, height, width]`` of one stream, each ``|symbol| <= limit``; CodecError if it
    is malformed or spells a larger symbol."""
    groups, height, width = shape
    if not 0 <= limit <= SYMBOL_MAX:
        raise CodecError(f"codec: symbol limit {limit} outside 0..{SYMBOL_MAX}")
    out = np.empty((groups, height, width), dtype=np.int16)
    if native is not None:
        try:
            native.decode(data, groups, height, width, limit, out)
        except ValueError as exc:
            raise CodecError(f"codec: payload stream: {exc}") from exc
        return out
    error = _py_decode(memoryview(data).cast("B"), out, limit)
    if error:
        raise CodecError(f"codec: payload stream: {error}")
    return out


class _Encoder:
    """LZMA's range encoder, as _arith.c's ``Enc``."""

    def __init__(self) -> None:
        self.low = 0
        self.range = MASK32
        self.cache = 0
        self.pending = 1
        self.out = bytearray()

    def shift_low(self) -> None:
        low = self.low
        if (low & MASK32) < 0xFF000000 or (low >> 32) != 0:
            carry = low >> 32
            held = self.cache
            while True:
                self.out.append((held + carry) & 0xFF)
                held = 0xFF
                self.pending -= 1
                if self.pending == 0:
                    break
            self.cache = (low >> 24) & 0xFF
        self.pending += 1
        self.low = (low & 0x00FFFFFF) << 8

    def bits(self, fast: List[int], slow: List[int], ctxs: Any, bits: Any) -> None:
        """Code ``bits[i]`` with context ``ctxs[i]``, in order."""
        for ctx, bit in zip(ctxs, bits):
            p = (fast[ctx] + slow[ctx]) >> 1
            bound = (self.range >> PROB_BITS) * p
            if bit:
                self.low += bound
                self.range -= bound
                fast[ctx] -= fast[ctx] >> FAST
                slow[ctx] -= slow[ctx] >> SLOW
            else:
                self.range = bound
                fast[ctx] += (PROB_ONE - fast[ctx]) >> FAST
                slow[ctx] += (PROB_ONE - slow[ctx]) >> SLOW
            while self.range < TOP:
                self.range <<= 8
                self.shift_low()

    def equal(self, bit: int) -> None:
        self.range >>= 1
        if bit:
            self.low += self.range
        while self.range < TOP:
            self.range <<= 8
            self.shift_low()


def _value_bins(v: int, left: int, above: int, ul: int, ur: int) -> Tuple[List[int], List[int], List[int]]:
    """Context-coded (contexts, bits) of one value, and its equiprobable bits (_arith.c's ``enc_value``)."""
    lft, up = abs(left), abs(above)
    ctxs = [ZERO + (min(lft, 2) * 3 + min(up, 2)) * 3 + min(ul + ur, 2)]
    bits = [1 if v else 0]
    if not v:
        return ctxs, bits, []
    ctxs.append(SIGN + ((left > 0) - (left < 0) + 1) * 3 + (above > 0) - (above < 0) + 1)
    bits.append(1 if v < 0 else 0)
    mag, nb = abs(v) - 1, min((lft + up + 1) >> 1, 3)
    for k in range(K_UNARY):
        ctxs.append(MAG + min(k, 6) * 4 + nb)
        bits.append(1 if mag > k else 0)
        if mag <= k:
            return ctxs, bits, []
    rest = mag - K_UNARY + 1
    n = rest.bit_length() - 1
    equal = [1] * n + [0] + [(rest >> i) & 1 for i in range(n - 1, -1, -1)]
    return ctxs, bits, equal


def _py_encode(q: np.ndarray) -> bytes:
    groups, height, width = q.shape
    enc = _Encoder()
    fast, slow = [PROB_ONE // 2] * N_CONTEXTS, [PROB_ONE // 2] * N_CONTEXTS
    active: List[bool] = np.asarray(q.reshape(groups, -1).any(axis=1)).tolist()
    busy_rows: List[List[bool]] = np.asarray(q.any(axis=2)).tolist()
    zero_row = [0] * width
    prev = 0
    for g in range(groups):
        enc.bits(fast, slow, (GROUP + prev,), (int(active[g]),))
        prev = int(active[g])
        if not prev:
            continue
        plane = q[g].tolist()
        above, up = 2, zero_row
        for h in range(height):
            busy = int(busy_rows[g][h])
            enc.bits(fast, slow, (ROW + above,), (busy,))
            above = busy
            if not busy:
                up = zero_row
                continue
            row = plane[h]
            for w in range(width):
                ul = abs(up[w - 1]) if w > 0 else 0
                ur = abs(up[w + 1]) if w + 1 < width else 0
                ctxs, bits, equal = _value_bins(row[w], row[w - 1] if w > 0 else 0, up[w], ul, ur)
                enc.bits(fast, slow, ctxs, bits)
                for bit in equal:
                    enc.equal(bit)
            up = row
    for _ in range(5):
        enc.shift_low()
    return bytes(enc.out)


class _Decoder:
    """LZMA's range decoder, as _arith.c's ``Dec``: bytes past the end read as 0 (and are counted)."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.len = len(data)
        self.pos = 0
        self.range = MASK32
        self.code = 0

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < self.len else 0
        self.pos += 1
        return b

    def bit(self, fast: List[int], slow: List[int], ctx: int) -> int:
        p = (fast[ctx] + slow[ctx]) >> 1
        bound = (self.range >> PROB_BITS) * p
        if self.code < bound:
            self.range = bound
            fast[ctx] += (PROB_ONE - fast[ctx]) >> FAST
            slow[ctx] += (PROB_ONE - slow[ctx]) >> SLOW
            bit = 0
        else:
            self.code -= bound
            self.range -= bound
            fast[ctx] -= fast[ctx] >> FAST
            slow[ctx] -= slow[ctx] >> SLOW
            bit = 1
        while self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self.byte()) & MASK32
        return bit

    def equal(self) -> int:
        self.range >>= 1
        bit = 1 if self.code >= self.range else 0
        if bit:
            self.code -= self.range
        while self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self.byte()) & MASK32
        return bit


TRUNCATED = "a stream that ends before its symbols do (truncated or corrupt)"


def _py_value(
    d: _Decoder, fast: List[int], slow: List[int], left: int, above: int, ul: int, ur: int, limit: int
) -> Any:
    """One value (an int), or an error message (a str)."""
    lft, up = abs(left), abs(above)
    if not d.bit(fast, slow, ZERO + (min(lft, 2) * 3 + min(up, 2)) * 3 + min(ul + ur, 2)):
        return 0
    negative = d.bit(fast, slow, SIGN + ((left > 0) - (left < 0) + 1) * 3 + (above > 0) - (above < 0) + 1)
    mag, nb = 0, min((lft + up + 1) >> 1, 3)
    while mag < K_UNARY and d.bit(fast, slow, MAG + min(mag, 6) * 4 + nb):
        mag += 1
    if mag == K_UNARY:
        n = 0
        while d.equal():
            n += 1
            if n > MAX_EG:
                return "an Exp-Golomb prefix longer than any magnitude allows"
        rest = 1
        for _ in range(n):
            rest = (rest << 1) | d.equal()
        mag = K_UNARY + rest - 1
    if mag + 1 > limit:
        return "a magnitude over the symbol range"
    return -(mag + 1) if negative else mag + 1


def _py_decode(data: memoryview, out: np.ndarray, limit: int) -> Optional[str]:
    groups, height, width = out.shape
    d = _Decoder(data)
    if d.len < 5:
        return "a stream shorter than the coder's 5-byte start"
    if d.byte() != 0:
        return "a stream whose first byte is not 0"
    for _ in range(4):
        d.code = (d.code << 8) | d.byte()
    fast, slow = [PROB_ONE // 2] * N_CONTEXTS, [PROB_ONE // 2] * N_CONTEXTS
    zero_row = [0] * width
    out[...] = 0
    prev = 0
    for g in range(groups):
        prev = d.bit(fast, slow, GROUP + prev)
        if not prev:
            continue
        above, up = 2, zero_row
        for h in range(height):
            above = d.bit(fast, slow, ROW + above)
            if not above:
                up = zero_row
                continue
            row = [0] * width
            for w in range(width):
                ul = abs(up[w - 1]) if w > 0 else 0
                ur = abs(up[w + 1]) if w + 1 < width else 0
                v = _py_value(d, fast, slow, row[w - 1] if w > 0 else 0, up[w], ul, ur, limit)
                if isinstance(v, str):
                    return v
                row[w] = v
            out[g, h] = row
            up = row
            if d.pos > d.len + 4:
                return TRUNCATED
    if d.pos > d.len:
        return TRUNCATED
    if d.pos < d.len:
        return "stray bytes after the last symbol"
    return None
