"""The calibration table of the sensitivity-weighted scheme: per channel of each crossing tensor, a sensitivity and
a mean, for one model, cut and input size.

A channel ``c`` of sensitivity ``s`` (how much, per value, a change of that channel moves the detector's output:
the Gauss–Newton diagonal of a confidence-weighted output loss, averaged over the channel's positions; measured by
``splitinfer.splitting.sensitivity``) is quantized, for a frame step ``delta``, with

    step_c = delta / sqrt(s_c)        q = floor((x - mean_c) / step_c + 0.5)        x' = mean_c + q * step_c

so every channel adds about the same loss per value, and a channel whose step dwarfs its spread sends only zeros
(which the coder codes in well under a bit for the whole channel). ``s_c = 0`` means "never sent": step 0, x' =
mean_c.

The file is a numpy ``.npz`` without pickles (``np.load(allow_pickle=False)``), members:

    format        "splitinfer-calibration-table"        version   1
    model         the model's fingerprint (sha256 hex)  cut, imgsz
    layers        int32 [T], the crossing tensors' layers, ascending
    sensitivity_<layer>, mean_<layer>                    float32 [channels]
    meta          JSON text: how it was measured (frames, probes, loss); part of the digest, not of the math

Its **digest** (sha256 of a canonical serialization, not of the zip, whose timestamps vary) names it on the wire:
a blob says which table encoded it, and a decoder holding another refuses it. :meth:`CalibrationTable.load`
checks everything it reads (size, members, dtypes, shapes, finite values) and raises CodecError.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from ..errors import CodecError

__all__ = ["FORMAT", "MAX_FILE_BYTES", "CalibrationTable"]

FORMAT = "splitinfer-calibration-table"
VERSION = 1
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_MEMBER_BYTES = 8 * 1024 * 1024
MAX_TENSORS = 256
MAX_CHANNELS = 65535
MAX_META = 64 * 1024
SCALARS = ("format", "version", "model", "cut", "imgsz", "layers", "meta")


@dataclass(frozen=True)
class CalibrationTable:
    """Per-channel sensitivity and mean of each crossing tensor at ``cut`` of ``model`` at ``imgsz``."""

    model: str
    cut: int
    imgsz: int
    layers: Tuple[int, ...]
    sensitivity: Tuple[np.ndarray, ...]  # float32 [channels] per tensor, finite, >= 0
    mean: Tuple[np.ndarray, ...]  # float32 [channels] per tensor, finite
    meta: Dict[str, Any] = field(default_factory=dict)
    _digest: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        try:
            sens = tuple(np.ascontiguousarray(s, dtype=np.float32) for s in self.sensitivity)
            mean = tuple(np.ascontiguousarray(m, dtype=np.float32) for m in self.mean)
        except (TypeError, ValueError) as exc:
            raise CodecError(f"calibration table: sensitivity and mean must be float arrays ({exc})") from exc
        object.__setattr__(self, "sensitivity", sens)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        _validate(self)
        object.__setattr__(self, "_digest", _digest(self))

    # ---------------------------------------------------------------------------------------- identity

    @property
    def digest(self) -> bytes:
        """sha256 (32 bytes) of the canonical content: what a blob names."""
        return self._digest  # computed once, in __post_init__

    @property
    def hexdigest(self) -> str:
        return self.digest.hex()

    def channels(self) -> Tuple[int, ...]:
        return tuple(int(s.shape[0]) for s in self.sensitivity)

    def describe(self) -> Dict[str, Any]:
        return {"digest": self.hexdigest, "model": self.model, "cut": self.cut, "imgsz": self.imgsz,
                "layers": list(self.layers), "channels": list(self.channels()), "meta": dict(self.meta)}

    # ---------------------------------------------------------------------------------------- steps

    def steps(self, delta: float) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
        """Per tensor, float32 ``(step, 1/step)`` per channel for frame step ``delta`` (0 where sensitivity is 0).

        Computed in float64 and rounded once, so encoder and decoder (and every platform) get the same values.
        """
        if not (np.isfinite(delta) and delta > 0):
            raise CodecError(f"codec: the quantization step delta must be positive and finite, got {delta}")
        out = []
        for s in self.sensitivity:
            root = np.sqrt(s.astype(np.float64))
            with np.errstate(divide="ignore"):
                step = np.where(root > 0, float(delta) / root, 0.0)
            inv = root / float(delta)
            out.append((step.astype(np.float32), inv.astype(np.float32)))
        return tuple(out)

    # ---------------------------------------------------------------------------------------- files

    def to_bytes(self) -> bytes:
        arrays: Dict[str, np.ndarray] = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION, dtype=np.int64),
            "model": np.array(self.model),
            "cut": np.array(self.cut, dtype=np.int64),
            "imgsz": np.array(self.imgsz, dtype=np.int64),
            "layers": np.array(self.layers, dtype=np.int32),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        for layer, s, m in zip(self.layers, self.sensitivity, self.mean):
            arrays[f"sensitivity_{layer}"] = s
            arrays[f"mean_{layer}"] = m
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    def save(self, path: Union[str, Path]) -> Path:
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(self.to_bytes())
        partial.replace(target)
        return target

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "calibration table") -> CalibrationTable:
        """Parse and check a table file's bytes; CodecError names what is wrong."""
        if len(data) > MAX_FILE_BYTES:
            raise CodecError(f"{name}: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit for a table")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                _check_members(members, name)
                arrays = {}
                for info in members:
                    with archive.open(info) as fh:
                        raw = fh.read(MAX_MEMBER_BYTES + 1)
                    arrays[info.filename[:-4]] = _load_npy(raw, f"{name}: {info.filename}")
        except CodecError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError) as exc:
            raise CodecError(f"{name}: not a readable calibration table ({exc})") from exc
        return _from_arrays(arrays, name)

    @classmethod
    def load(cls, path: Union[str, Path]) -> CalibrationTable:
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                raise CodecError(f"{p}: {size} bytes, over the {MAX_FILE_BYTES}-byte limit for a table")
            data = p.read_bytes()
        except OSError as exc:
            raise CodecError(f"{p}: cannot read the calibration table ({exc.strerror or exc})") from exc
        return cls.from_bytes(data, name=str(p))


def _load_npy(raw: bytes, what: str) -> np.ndarray:
    """One .npy member, its header checked before numpy allocates what the header declares."""
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise CodecError(f"{what}: .npy version {version} is not read here")
    if dtype.hasobject:
        raise CodecError(f"{what}: holds Python objects; a table holds numbers and text only")
    count = 1
    for d in shape:
        count *= int(d)
    if count * dtype.itemsize > len(raw) - fh.tell():
        raise CodecError(f"{what}: declares {count} values of {dtype}, more than its {len(raw)} bytes hold")
    fh.seek(0)
    return np.load(fh, allow_pickle=False)


def _check_members(members: Sequence[zipfile.ZipInfo], name: str) -> None:
    names = [m.filename for m in members]
    if len(names) != len(set(names)) or not all(n.endswith(".npy") for n in names):
        raise CodecError(f"{name}: unexpected members {names[:8]}")
    missing = [k for k in SCALARS if f"{k}.npy" not in names]
    if missing:
        raise CodecError(f"{name}: not a calibration table: missing {missing}")
    if len(names) > len(SCALARS) + 2 * MAX_TENSORS:
        raise CodecError(f"{name}: {len(names)} members, more than any table holds")
    total = 0
    for m in members:
        if m.file_size > MAX_MEMBER_BYTES:
            raise CodecError(f"{name}: member {m.filename} would unpack to {m.file_size} bytes (limit "
                             f"{MAX_MEMBER_BYTES})")
        total += m.file_size
    if total > 4 * MAX_FILE_BYTES:
        raise CodecError(f"{name}: would unpack to {total} bytes")


def _scalar(arrays: Dict[str, np.ndarray], key: str, kind: str, name: str) -> Any:
    a = arrays[key]
    if a.shape != () or a.dtype.kind != kind:
        raise CodecError(f"{name}: {key} must be a scalar of kind {kind!r}, got {a.dtype} {a.shape}")
    return a.item()


def _from_arrays(arrays: Dict[str, np.ndarray], name: str) -> CalibrationTable:
    if _scalar(arrays, "format", "U", name) != FORMAT:
        raise CodecError(f"{name}: not a calibration table (format {arrays['format']!r})")
    version = _scalar(arrays, "version", "i", name)
    if version != VERSION:
        raise CodecError(f"{name}: table version {version} is not supported (this build reads {VERSION})")
    layers = arrays["layers"]
    if layers.ndim != 1 or layers.dtype.kind != "i" or not 1 <= layers.shape[0] <= MAX_TENSORS:
        raise CodecError(f"{name}: layers must be 1..{MAX_TENSORS} integers, got {layers.dtype} {layers.shape}")
    try:
        meta = json.loads(_scalar(arrays, "meta", "U", name)[:MAX_META])
    except ValueError as exc:
        raise CodecError(f"{name}: meta is not JSON ({exc})") from exc
    sens: List[np.ndarray] = []
    mean: List[np.ndarray] = []
    for layer in layers.tolist():
        for key, into in ((f"sensitivity_{layer}", sens), (f"mean_{layer}", mean)):
            if key not in arrays:
                raise CodecError(f"{name}: missing {key}")
            if arrays[key].dtype.kind != "f":
                raise CodecError(f"{name}: {key} must be float, got {arrays[key].dtype}")
            into.append(arrays[key])
    extra = set(arrays) - set(SCALARS) - {f"{k}_{n}" for n in layers.tolist() for k in ("sensitivity", "mean")}
    if extra:
        raise CodecError(f"{name}: unexpected members {sorted(extra)[:8]}")
    return CalibrationTable(
        model=str(_scalar(arrays, "model", "U", name)),
        cut=int(_scalar(arrays, "cut", "i", name)),
        imgsz=int(_scalar(arrays, "imgsz", "i", name)),
        layers=tuple(int(n) for n in layers.tolist()),
        sensitivity=tuple(sens),
        mean=tuple(mean),
        meta=meta if isinstance(meta, dict) else {"meta": meta},
    )


def _validate(t: CalibrationTable) -> None:
    where = f"calibration table (model {t.model[:12]}…, cut {t.cut})"
    if len(t.model.encode("utf-8")) > 255:
        raise CodecError(f"{where}: model fingerprint over 255 bytes")
    if not 1 <= t.cut <= 65535 or not 1 <= t.imgsz <= 65535:
        raise CodecError(f"{where}: cut {t.cut} or imgsz {t.imgsz} out of range (1..65535)")
    if not 1 <= len(t.layers) <= MAX_TENSORS:
        raise CodecError(f"{where}: {len(t.layers)} tensors (1..{MAX_TENSORS} allowed)")
    if list(t.layers) != sorted(set(t.layers)) or t.layers[0] < 0 or t.layers[-1] >= t.cut:
        raise CodecError(f"{where}: layers {list(t.layers)} must be ascending, unique and below the cut")
    if not (len(t.sensitivity) == len(t.mean) == len(t.layers)):
        raise CodecError(f"{where}: {len(t.layers)} layers but {len(t.sensitivity)} sensitivity and "
                         f"{len(t.mean)} mean arrays")
    for layer, s, m in zip(t.layers, t.sensitivity, t.mean):
        if s.ndim != 1 or not 1 <= s.shape[0] <= MAX_CHANNELS or m.shape != s.shape:
            raise CodecError(f"{where}: layer {layer}: sensitivity {s.shape} and mean {m.shape} must be the same "
                             f"1..{MAX_CHANNELS} channels")
        if not (np.isfinite(s).all() and np.isfinite(m).all()):
            raise CodecError(f"{where}: layer {layer}: NaN or infinity in the table")
        if (s < 0).any():
            raise CodecError(f"{where}: layer {layer}: negative sensitivity")


def _digest(t: CalibrationTable) -> bytes:
    h = hashlib.sha256()
    head = {"format": FORMAT, "version": VERSION, "model": t.model, "cut": t.cut, "imgsz": t.imgsz,
            "layers": list(t.layers), "meta": t.meta}
    h.update(json.dumps(head, sort_keys=True).encode("utf-8"))
    for s, m in zip(t.sensitivity, t.mean):
        h.update(s.astype("<f4").tobytes())
        h.update(m.astype("<f4").tobytes())
    return h.digest()
