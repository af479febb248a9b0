"""Wire format version 2: sensitivity-weighted quantization (a calibration table and a frame step), range-coded.

Per channel ``c`` of each crossing tensor, with the table's sensitivity ``s_c`` and mean ``mean_c`` and the frame's
step ``delta``: ``q = clamp(floor((x - mean_c) * sqrt(s_c) / delta + 0.5), ±QMAX)`` (table.py), then one range-coded
stream per tensor (_arith.c). The blob names the table by its digest; decoding needs that table and nothing else.
docs/wire-format.md draws the layout byte by byte; keep the two in step.

Quantization runs on the tensors' own device (torch ops on a GPU, where only the non-zero rows of symbols then
cross to the CPU; the C quantizer, or numpy, on a CPU): the same symbols every way. Temporal delta coding as in
version 1: a delta frame codes ``q - q_key`` against its source's keyframe, quantized with the keyframe's step.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import CodecError
from ..features import FeatureSet, FrameMeta
from . import arith
from . import format as wire
from .delta import KeyStore
from .table import CalibrationTable

__all__ = ["FRAME", "SCHEME_WEIGHTED", "TENSOR", "WeightedCoder"]

SCHEME_WEIGHTED = 3
DIGEST_BYTES = 32
# version 1's frame record, then the frame's quantization step delta (f32)
FRAME = struct.Struct("<QdIIdddBQf")
# layer, dtype, scheme, ndim; then u32 x ndim shape, u32 stream length
TENSOR = struct.Struct("<HBBB")
MAX_DELTA = 1.0e6
TORCH_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# (model, cut, layers, table digest, per-tensor shape without the batch, frame step)
Signature = Tuple[str, int, Tuple[int, ...], bytes, Tuple[Tuple[int, ...], ...], float]


@dataclass
class _Key:
    """A source's last keyframe: its symbols per tensor ([channels, rows, width] int16, CPU) and step."""

    seq: int
    signature: Signature
    symbols: List[np.ndarray]
    since: int = 1
    nbytes: Optional[int] = None  # its coded size, when it was sent alone in its blob


@dataclass(frozen=True)
class _Frame:
    meta: FrameMeta
    kind: int
    ref_seq: int
    delta: float


def coder_shape(shape: Sequence[int]) -> Tuple[int, int, int]:
    """The coder's ``(groups, rows, width)`` for a tensor ``(batch, channels, *spatial)``: a group per channel."""
    groups = int(shape[0]) * int(shape[1])
    rows = 1
    for d in shape[2:-1]:
        rows *= int(d)
    width = int(shape[-1]) if len(shape) >= 3 else 1
    return groups, rows, width


class WeightedCoder:
    """Encoder and decoder state of the version-2 scheme for one table (used by :class:`Codec`)."""

    def __init__(self, table: CalibrationTable, *, max_sources: int, max_values: int, max_bytes: int) -> None:
        self.table = table
        self.max_values = max_values
        self.max_bytes = max_bytes
        self._enc_keys: KeyStore[_Key] = KeyStore(max_sources)
        self._dec_keys: KeyStore[_Key] = KeyStore(max_sources)
        self._steps: Dict[float, Tuple[Tuple[np.ndarray, np.ndarray], ...]] = {}

    def reset(self, source: Optional[str] = None) -> None:
        self._enc_keys.drop(source)
        self._dec_keys.drop(source)

    def steps(self, delta: float) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
        found = self._steps.get(delta)
        if found is None:
            if len(self._steps) >= 16:
                self._steps.clear()
            found = self._steps[delta] = self.table.steps(delta)
        return found

    # ------------------------------------------------------------------------------------------ encode

    def encode(self, features: FeatureSet, delta: float, keyframe_interval: int) -> bytes:
        self._check_features(features)
        delta = float(np.float32(delta))
        metas = features.frames or tuple(FrameMeta() for _ in range(features.batch))
        signature = self._signature(features.model, features.cut, features.layers,
                                    [tuple(int(d) for d in t.shape[1:]) for t in features.tensors], delta)
        frames, keys = self._plan(metas, signature, delta, keyframe_interval)
        steps = self.steps(delta)
        symbols = [_quantize(t, self.table.mean[ti], steps[ti][1]) for ti, t in enumerate(features.tensors)]
        _refresh_where_delta_costs_more(frames, keys, symbols)
        streams = _streams(frames, keys, symbols)
        size = sum(map(len, streams))
        key = keys[0] if len(frames) == 1 else None
        if key is not None and key.nbytes is not None and size >= key.nbytes:
            # the estimate let through a delta that costs as much as its keyframe did (a fast pan): send a keyframe,
            # which the next frames then refer to
            frames[0] = _Frame(frames[0].meta, wire.KIND_KEY, frames[0].meta.seq, frames[0].delta)
            keys[0] = None
            streams = _streams(frames, keys, symbols)
            size = sum(map(len, streams))
        self._remember(frames, signature, symbols, size)
        return self._serialize(features, frames, streams)

    def _plan(
        self, metas: Sequence[FrameMeta], signature: Signature, delta: float, interval: int
    ) -> Tuple[List[_Frame], List[Optional[_Key]]]:
        sources = [m.source for m in metas]
        frames: List[_Frame] = []
        keys: List[Optional[_Key]] = []
        for m in metas:
            key = self._enc_keys.get(m.source) if interval > 0 else None
            alone = sources.count(m.source) == 1
            usable = (alone and key is not None and key.signature == signature and key.seq < m.seq
                      and key.since < interval)
            if usable:
                assert key is not None
                frames.append(_Frame(m, wire.KIND_DELTA, key.seq, delta))
            elif interval > 0 and alone:
                frames.append(_Frame(m, wire.KIND_KEY, m.seq, delta))
            else:
                frames.append(_Frame(m, wire.KIND_INTRA, 0, delta))
            keys.append(key if usable else None)
        return frames, keys

    def _remember(self, frames: List[_Frame], signature: Signature, symbols: List[np.ndarray], nbytes: int) -> None:
        for b, f in enumerate(frames):
            if f.kind == wire.KIND_KEY:
                mine = [q[b * (q.shape[0] // len(frames)) : (b + 1) * (q.shape[0] // len(frames))].copy()
                        for q in symbols]
                alone = nbytes if len(frames) == 1 else None
                self._enc_keys.put(f.meta.source, _Key(f.meta.seq, signature, mine, nbytes=alone))
            elif f.kind == wire.KIND_DELTA:
                key = self._enc_keys.get(f.meta.source)
                if key is not None:
                    key.since += 1

    def _serialize(self, features: FeatureSet, frames: List[_Frame], streams: List[bytes]) -> bytes:
        flags = wire.FLAG_DELTA if any(f.kind for f in frames) else 0
        height, width = features.input_shape
        out: List[bytes] = []
        try:
            out.append(wire.PREAMBLE.pack(wire.MAGIC, wire.VERSION_WEIGHTED, flags, len(frames),
                                          len(features.tensors), features.cut, height, width))
            wire.write_str(out, features.model, "model fingerprint")
            out.append(self.table.digest)
            for f in frames:
                m = f.meta
                wire.write_str(out, m.source, "frame source")
                oh, ow = m.orig_shape
                out.append(FRAME.pack(m.seq, m.timestamp, oh, ow, m.ratio, m.pad[0], m.pad[1], f.kind, f.ref_seq,
                                      f.delta))
            for layer, t, stream in zip(features.layers, features.tensors, streams):
                out.append(TENSOR.pack(layer, TORCH_DTYPES.index(t.dtype), SCHEME_WEIGHTED, t.dim()))
                out.append(np.asarray(t.shape, dtype="<u4").tobytes())
                out.append(wire.U32.pack(len(stream)))
        except (struct.error, OverflowError, ValueError) as exc:
            raise CodecError(f"codec: a field does not fit the wire format: {exc}") from exc
        out.extend(streams)
        return wire.seal(out)

    def _check_features(self, features: FeatureSet) -> None:
        t = self.table
        if not features.tensors:
            raise CodecError("codec: a FeatureSet with no tensors has nothing to encode")
        if features.model and t.model and features.model != t.model:
            raise CodecError(f"codec: features of model {features.model[:12]}…, but the calibration table is for "
                             f"model {t.model[:12]}…; calibrate this model")
        if features.cut != t.cut or tuple(features.layers) != t.layers:
            raise CodecError(f"codec: features cut at {features.cut} (layers {list(features.layers)}), but the "
                             f"calibration table is for cut {t.cut} (layers {list(t.layers)})")
        if tuple(features.input_shape) != (t.imgsz, t.imgsz):
            raise CodecError(f"codec: features of a {features.input_shape[0]}×{features.input_shape[1]} input, but the "
                             f"calibration table is for {t.imgsz}×{t.imgsz}")
        for layer, x, channels in zip(t.layers, features.tensors, t.channels()):
            if x.dtype not in TORCH_DTYPES:
                raise CodecError(f"codec: tensor of layer {layer} is {x.dtype}; expected a float tensor")
            if x.dim() < 2 or x.dim() > wire.MAX_NDIM or int(x.shape[1]) != channels:
                raise CodecError(f"codec: tensor of layer {layer} has shape {tuple(x.shape)}; the calibration "
                                 f"table has {channels} channels for it")

    def _signature(self, model: str, cut: int, layers: Sequence[int], shapes: Sequence[Tuple[int, ...]],
                   delta: float) -> Signature:
        return (model, cut, tuple(layers), self.table.digest, tuple(shapes), delta)

    # ------------------------------------------------------------------------------------------ decode

    def decode(self, flags: int, body: memoryview, device: Any) -> FeatureSet:
        r = wire.Reader(body)
        _, _, _, n_frames, n_tensors, cut, height, width = r.unpack(wire.PREAMBLE, "preamble")
        if not 1 <= n_frames <= wire.MAX_FRAMES:
            raise CodecError(f"codec: {n_frames} frames in one blob (1..{wire.MAX_FRAMES} allowed)")
        model = r.string("model fingerprint")
        digest = bytes(r.take(DIGEST_BYTES, "calibration table digest"))
        self._check_blob(model, digest, cut, height, width, n_tensors)
        frames = [_read_frame(r) for _ in range(n_frames)]
        shapes, lengths, dtypes = self._read_tensors(r, n_frames)
        streams = []
        for i, size in enumerate(lengths):
            streams.append(r.take(size, f"tensor {i} stream"))
        if r.pos != len(body):
            raise CodecError(f"codec: {len(body) - r.pos} stray bytes after the payload")
        signature = self._signature(model, cut, self.table.layers, [s[1:] for s in shapes], 0.0)
        keys = self._keys_for(frames, signature)
        tensors: List[torch.Tensor] = []
        symbols: List[np.ndarray] = []
        for ti, (shape, stream, dtype) in enumerate(zip(shapes, streams, dtypes)):
            any_delta = any(k is not None for k in keys)
            q = arith.decode(stream, coder_shape(shape), limit=arith.SYMBOL_MAX if any_delta else arith.QMAX)
            if any_delta:
                q = _undelta(q, frames, keys, ti)
            symbols.append(q)
            tensors.append(self._dequantize(q, shape, frames, ti, device).to(dtype))
        for b, f in enumerate(frames):
            if f.kind == wire.KIND_KEY:
                per = [q.shape[0] // n_frames for q in symbols]
                mine = [q[b * n : (b + 1) * n].copy() for q, n in zip(symbols, per)]
                self._dec_keys.put(f.meta.source, _Key(f.meta.seq, _with_delta(signature, f.delta), mine))
        try:
            return FeatureSet(cut=cut, layers=self.table.layers, tensors=tuple(tensors), input_shape=(height, width),
                              model=model, frames=tuple(f.meta for f in frames))
        except ValueError as exc:
            raise CodecError(f"codec: inconsistent blob: {exc}") from exc

    def _check_blob(self, model: str, digest: bytes, cut: int, height: int, width: int, n_tensors: int) -> None:
        t = self.table
        if digest != t.digest:
            raise CodecError(f"codec: this blob was encoded with calibration table {digest.hex()[:16]}…, this "
                             f"decoder holds table {t.hexdigest[:16]}…; give it the encoder's table")
        # the digest covers the table's model, cut and size: a blob that disagrees with them is corrupt or forged
        if (model and t.model and model != t.model) or cut != t.cut or (height, width) != (t.imgsz, t.imgsz):
            raise CodecError(f"codec: blob (model {model[:12]}…, cut {cut}, input {height}×{width}) does not match "
                             f"its calibration table (model {t.model[:12]}…, cut {t.cut}, input {t.imgsz})")
        if n_tensors != len(t.layers):
            raise CodecError(f"codec: {n_tensors} tensors in the blob, its calibration table has {len(t.layers)}")

    def _read_tensors(
        self, r: wire.Reader, n_frames: int
    ) -> Tuple[List[Tuple[int, ...]], List[int], List[torch.dtype]]:
        shapes: List[Tuple[int, ...]] = []
        lengths: List[int] = []
        dtypes: List[torch.dtype] = []
        total = stream_bytes = 0
        for i, (layer, channels) in enumerate(zip(self.table.layers, self.table.channels())):
            got, dtype, scheme, ndim = r.unpack(TENSOR, f"tensor {i} record")
            if got != layer:
                raise CodecError(f"codec: tensor {i} is layer {got}, the calibration table has layer {layer}")
            if dtype >= len(TORCH_DTYPES) or scheme != SCHEME_WEIGHTED:
                raise CodecError(f"codec: tensor {i}: unknown dtype {dtype} or scheme {scheme} (version 2 has "
                                 f"scheme {SCHEME_WEIGHTED} only)")
            if not 2 <= ndim <= wire.MAX_NDIM:
                raise CodecError(f"codec: tensor {i}: {ndim} dimensions (2..{wire.MAX_NDIM} allowed)")
            shape = tuple(int(d) for d in r.array("u4", ndim, f"tensor {i} shape"))
            if shape[0] != n_frames or shape[1] != channels or not all(1 <= d <= wire.MAX_DIM for d in shape):
                raise CodecError(f"codec: tensor {i}: shape {shape} for {n_frames} frames of {channels} channels")
            numel = 1
            for d in shape:
                numel *= d
            total += numel
            if total > self.max_values:
                raise CodecError(f"codec: blob holds over {self.max_values} values (tensor {i} shape {shape}); "
                                 "raise max_values if that is expected")
            (size,) = r.unpack(wire.U32, f"tensor {i} stream length")
            stream_bytes += size
            if stream_bytes > self.max_bytes:
                raise CodecError(f"codec: streams over {self.max_bytes} bytes (max_bytes)")
            shapes.append(shape)
            lengths.append(size)
            dtypes.append(TORCH_DTYPES[dtype])
        return shapes, lengths, dtypes

    def _keys_for(self, frames: List[_Frame], signature: Signature) -> List[Optional[_Key]]:
        keys: List[Optional[_Key]] = []
        for f in frames:
            if f.kind != wire.KIND_DELTA:
                keys.append(None)
                continue
            key = self._dec_keys.get(f.meta.source)
            if key is None or key.seq != f.ref_seq:
                have = "none" if key is None else f"keyframe {key.seq}"
                raise CodecError(
                    f"codec: delta frame {f.meta.seq} of source {f.meta.source!r} refers to keyframe {f.ref_seq}, "
                    f"which this decoder does not hold ({have}); frames of this source resume at its next keyframe"
                )
            if key.signature != _with_delta(signature, f.delta):
                raise CodecError(f"codec: delta frame {f.meta.seq} of source {f.meta.source!r} does not match its "
                                 "keyframe")
            keys.append(key)
        return keys

    def _dequantize(
        self, q: np.ndarray, shape: Tuple[int, ...], frames: List[_Frame], ti: int, device: Any
    ) -> torch.Tensor:
        mean = np.tile(self.table.mean[ti], len(frames))
        step = np.concatenate([self.steps(f.delta)[ti][0] for f in frames])
        flat = q.reshape(q.shape[0], -1)
        if torch.device(device).type == "cpu":
            return torch.from_numpy(arith.dequantize(flat, mean, step)).reshape(shape)
        qt = torch.from_numpy(flat).to(device)
        out = qt.float().mul_(torch.from_numpy(step).to(device)[:, None])
        return out.add_(torch.from_numpy(mean).to(device)[:, None]).reshape(shape)


def _streams(frames: List[_Frame], keys: List[Optional[_Key]], symbols: List[np.ndarray]) -> List[bytes]:
    """One range-coded stream per tensor: each frame's symbols, minus its keyframe's for a delta frame."""
    streams: List[bytes] = []
    for ti, q in enumerate(symbols):
        coded = q
        if any(k is not None for k in keys):
            coded = q.copy()
            per = q.shape[0] // len(frames)
            for b, key in enumerate(keys):
                if key is not None:
                    coded[b * per : (b + 1) * per] -= key.symbols[ti]
        streams.append(arith.encode(coded))
    return streams


def _refresh_where_delta_costs_more(frames: List[_Frame], keys: List[Optional[_Key]],
                                    symbols: List[np.ndarray]) -> None:
    """Code a planned delta frame as a new keyframe when its differences would cost more than its own symbols
    (the scene changed, the camera moved): the cost is estimated as Σ (|v| + 1) over non-zero symbols, which
    tracks the range coder's output, so delta coding never costs much more than sending every frame alone."""
    for b, key in enumerate(keys):
        if key is None:
            continue
        own = diff = 0
        for q, kq in zip(symbols, key.symbols):
            per = q.shape[0] // len(frames)
            mine = q[b * per : (b + 1) * per].astype(np.int32)
            d = mine - kq
            own += int(np.abs(mine).sum()) + int(np.count_nonzero(mine))
            diff += int(np.abs(d).sum()) + int(np.count_nonzero(d))
        if diff >= own:
            frames[b] = _Frame(frames[b].meta, wire.KIND_KEY, frames[b].meta.seq, frames[b].delta)
            keys[b] = None


def _with_delta(signature: Signature, delta: float) -> Signature:
    model, cut, layers, digest, shapes, _ = signature
    return (model, cut, layers, digest, shapes, delta)


def _read_frame(r: wire.Reader) -> _Frame:
    source = r.string("frame source")
    seq, ts, oh, ow, ratio, px, py, kind, ref, delta = r.unpack(FRAME, "frame record")
    if kind not in wire.KINDS:
        raise CodecError(f"codec: unknown frame kind {kind}")
    if not (np.isfinite(delta) and 0 < delta <= MAX_DELTA):
        raise CodecError(f"codec: frame {seq}: quantization step {delta} is not in (0, {MAX_DELTA:g}]")
    return _Frame(FrameMeta(source, seq, ts, (oh, ow), ratio, (px, py)), kind, ref, float(delta))


def _undelta(q: np.ndarray, frames: List[_Frame], keys: List[Optional[_Key]], ti: int) -> np.ndarray:
    """Add each delta frame's keyframe symbols back; every frame's symbols must then lie in ±QMAX (the coder
    checked intra frames' already)."""
    per = q.shape[0] // len(frames)
    out = q.astype(np.int32)
    for b, key in enumerate(keys):
        if key is not None:
            out[b * per : (b + 1) * per] += key.symbols[ti]
    if out.size and int(np.abs(out).max()) > arith.QMAX:
        raise CodecError(f"codec: tensor {ti}: a symbol outside ±{arith.QMAX}")
    return out.astype(np.int16)


def _quantize(t: torch.Tensor, mean: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """int16 symbols ``[frames * channels, rows, width]`` of ``t`` on the CPU, quantized on ``t``'s device."""
    groups, rows, width = coder_shape(t.shape)
    batch = int(t.shape[0])
    means, invs = np.tile(mean, batch), np.tile(inv, batch)
    if t.device.type == "cpu":
        x = t.detach().float().contiguous().reshape(groups, rows * width).numpy()
        return arith.quantize(x, means, invs).reshape(groups, rows, width)
    return _quantize_on_device(t, means, invs, (groups, rows, width))


def _quantize_on_device(t: torch.Tensor, means: np.ndarray, invs: np.ndarray,
                        shape: Tuple[int, int, int]) -> np.ndarray:
    """The same symbols with torch ops on ``t``'s device; only rows holding a non-zero symbol cross to the CPU."""
    groups, rows, width = shape
    x = t.detach().float().reshape(groups, rows * width)
    if not bool(torch.isfinite(x).all()):
        raise CodecError("codec: cannot quantize a tensor holding NaN or infinity")
    mu = torch.from_numpy(means).to(x.device)[:, None]
    inv = torch.from_numpy(invs).to(x.device)[:, None]
    q = torch.floor((x - mu).mul_(inv).add_(0.5)).clamp_(-arith.QMAX, arith.QMAX).to(torch.int16)
    q = q.reshape(groups * rows, width)
    busy = (q != 0).any(dim=1)
    out = np.zeros((groups * rows, width), dtype=np.int16)
    out[busy.cpu().numpy()] = q[busy].cpu().numpy()
    return out.reshape(groups, rows, width)
