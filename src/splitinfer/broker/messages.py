"""What travels on the topic tree: the JSON payloads (device info, assignments, the fleet policy) and the
envelope around feature frames.

Every parser bounds what it reads and raises one typed error (``ProtocolError``, a ``TransportError``) with a
clear message, so a node skips a bad message instead of crashing. Part of the node runtime: Python 3.8.

Features envelope (binary, little-endian), in front of the codec blob on ``features/<tail>/<head>``::

    magic  b"SIF1"   4 bytes
    sent   float64   wall-clock seconds when published (transit = receive time - sent)
    count  uint8     number of stage timings that follow (forward compatible: extra ones are ignored)
    stages float32 × count   capture_ms, preprocess_ms, head_ms, encode_ms (per batch)
    blob   rest      the codec's self-describing payload
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from splitinfer.errors import ProtocolError

__all__ = [
    "HEAD_STAGES",
    "Assignment",
    "DeviceInfo",
    "Override",
    "Policy",
    "ProtocolError",
    "pack_features",
    "parse_json",
    "unpack_features",
]

ENVELOPE_MAGIC = b"SIF1"
_ENVELOPE = struct.Struct("<4sdB")
HEAD_STAGES = ("capture_ms", "preprocess_ms", "head_ms", "encode_ms")
MAX_JSON_BYTES = 256 * 1024
ROLES = ("head", "tail", "coordinator")
_EXPLANATION = ("reason", "predicted_ms", "predicted_fps", "prediction")  # why a cut was chosen: not the pipeline


def pack_features(blob: bytes, sent: float, stages: Mapping[str, float]) -> bytes:
    values = [float(stages.get(name, 0.0)) for name in HEAD_STAGES]
    return _ENVELOPE.pack(ENVELOPE_MAGIC, sent, len(values)) + struct.pack(f"<{len(values)}f", *values) + blob


def unpack_features(payload: bytes) -> Tuple[float, Dict[str, float], bytes]:
    """(sent, stage timings, codec blob) from a features message."""
    if len(payload) < _ENVELOPE.size:
        raise ProtocolError(f"features message of {len(payload)} bytes is shorter than its envelope")
    magic, sent, count = _ENVELOPE.unpack_from(payload)
    if magic != ENVELOPE_MAGIC:
        raise ProtocolError(f"features message starts with {magic!r}, expected {ENVELOPE_MAGIC!r}")
    end = _ENVELOPE.size + 4 * count
    if len(payload) < end:
        raise ProtocolError(f"features envelope announces {count} timings but the message ends first")
    values = struct.unpack_from(f"<{count}f", payload, _ENVELOPE.size)
    if not math.isfinite(sent) or not all(math.isfinite(v) for v in values):
        raise ProtocolError("features envelope holds a non-finite time")
    return sent, dict(zip(HEAD_STAGES, values)), payload[end:]


def parse_json(payload: bytes, what: str) -> Dict[str, Any]:
    """A JSON object from a message, bounded in size; ProtocolError otherwise."""
    if len(payload) > MAX_JSON_BYTES:
        raise ProtocolError(f"{what}: {len(payload)} bytes of JSON is over the {MAX_JSON_BYTES} byte limit")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _get(data: Mapping[str, Any], key: str, kind: Any, what: str, default: Any = ...) -> Any:
    if key not in data or data[key] is None:
        if default is ...:
            raise ProtocolError(f"{what}: missing field {key!r}")
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{what}: field {key!r} should be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


@dataclass(frozen=True)
class DeviceInfo:
    """What a node says about itself on ``devices/<id>/info`` (retained)."""

    id: str
    role: str
    version: str = ""
    arch: str = ""
    accelerator: str = "cpu"
    torch: str = ""
    cuda: str = ""
    memory_mb: int = 0
    python: str = ""
    profile: Dict[str, Any] = field(default_factory=dict)
    device: str = ""  # the torch device the node runs on: "cpu", "cuda:0"
    failure: str = ""  # why the node failed, when it did

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> DeviceInfo:
        data = parse_json(payload, "device info")
        what = f"device info of {data.get('id')!r}"
        role = _get(data, "role", str, what)
        if role not in ROLES:
            raise ProtocolError(f"{what}: role must be one of {ROLES}, got {role!r}")
        return cls(
            id=_get(data, "id", str, what), role=role, version=_get(data, "version", str, what, ""),
            arch=_get(data, "arch", str, what, ""), accelerator=_get(data, "accelerator", str, what, "cpu"),
            torch=_get(data, "torch", str, what, ""), cuda=_get(data, "cuda", str, what, ""),
            memory_mb=_get(data, "memory_mb", int, what, 0), python=_get(data, "python", str, what, ""),
            profile=_get(data, "profile", dict, what, {}), device=_get(data, "device", str, what, ""),
            failure=_get(data, "failure", str, what, ""),
        )


@dataclass(frozen=True)
class Assignment:
    """What the coordinator tells a node on ``devices/<id>/assign`` (retained).

    For a head: the model to load (path as the node sees it, and its sha256 when it is a checkpoint), the input
    size, the cut (``a|b|c|d`` or a layer number; the head resolves it on its model), the codec settings, the
    tail to send to (``route``; empty while no tail is live) and the batch size. For a tail: model, imgsz,
    batch and ``max_wait_ms``; ``heads`` lists the heads routed to it.

    Why the cut was chosen (optional, absent from older coordinators): ``reason`` in words, ``predicted_ms``
    (end-to-end latency the cost model predicts for this cut), ``predicted_fps`` (frames per second the head
    can sustain) and ``prediction`` (the stages behind it: head, transfer and tail ms, bytes, the link used).
    """

    generation: int
    model: str
    sha256: str = ""
    imgsz: int = 640
    cut: str = "b"
    codec: Dict[str, Any] = field(default_factory=dict)
    route: str = ""
    batch: int = 1
    max_wait_ms: float = 5.0
    heads: List[str] = field(default_factory=list)
    reason: str = ""
    predicted_ms: Optional[float] = None
    predicted_fps: Optional[float] = None
    prediction: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.generation < 0 or self.imgsz < 32 or self.batch < 1 or self.max_wait_ms < 0:
            raise ProtocolError(f"assignment: out-of-range values in {self}")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def same_pipeline(self, other: Optional[Assignment]) -> bool:
        """True when only the route (or the generation) differs: no model reload needed."""
        if other is None:
            return False
        mine, theirs = asdict(self), asdict(other)
        for key in ("generation", "route", "heads", *_EXPLANATION):
            mine.pop(key), theirs.pop(key)
        return bool(mine == theirs)

    @classmethod
    def from_json(cls, payload: bytes) -> Assignment:
        data = parse_json(payload, "assignment")
        what = "assignment"
        cut = data.get("cut", "b")
        if isinstance(cut, int) and not isinstance(cut, bool):
            cut = str(cut)
        if not isinstance(cut, str):
            raise ProtocolError(f"{what}: field 'cut' should be a|b|c|d or a layer number, got {cut!r}")
        heads = _get(data, "heads", list, what, [])
        if not all(isinstance(h, str) for h in heads):
            raise ProtocolError(f"{what}: field 'heads' should list device ids")
        return cls(
            generation=_get(data, "generation", int, what), model=_get(data, "model", str, what),
            sha256=_get(data, "sha256", str, what, ""), imgsz=_get(data, "imgsz", int, what, 640), cut=cut,
            codec=_get(data, "codec", dict, what, {}), route=_get(data, "route", str, what, ""),
            batch=_get(data, "batch", int, what, 1), max_wait_ms=_get(data, "max_wait_ms", float, what, 5.0),
            heads=list(heads), reason=_get(data, "reason", str, what, ""),
            predicted_ms=_get(data, "predicted_ms", float, what, None),
            predicted_fps=_get(data, "predicted_fps", float, what, None),
            prediction=_get(data, "prediction", dict, what, {}),
        )


@dataclass(frozen=True)
class Override:
    """Per-device settings that win over the fleet defaults."""

    cut: Optional[str] = None
    codec: Dict[str, Any] = field(default_factory=dict)
    batch: Optional[int] = None


@dataclass(frozen=True)
class Policy:
    """The fleet's wishes: which model, and how heads cut and encode by default."""

    model: str
    sha256: str = ""
    imgsz: int = 640
    cut: str = "b"
    codec: Dict[str, Any] = field(default_factory=lambda: {"bits": 4})
    batch: int = 1
    tail_batch: int = 8
    max_wait_ms: float = 5.0
    overrides: Dict[str, Override] = field(default_factory=dict)
    auto_fallback: str = "b"  # the cut a head runs with cut=auto until the profiles are in

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        overrides = {k: Override(**v) for k, v in dict(data.get("overrides") or {}).items()}
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "overrides"}
        return cls(overrides=overrides, **fields)
