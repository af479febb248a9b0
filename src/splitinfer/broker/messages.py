"""What travels on the topic tree: the JSON payloads (device info, assignments, the fleet policy) and the
envelope around feature frames.

Nothing a device publishes is trusted: every JSON payload is bounded in size and depth and validated against a
schema (pydantic dataclasses, strict types, every number range-checked) before use, and every failure is one
``ProtocolError`` with a clear message, so the receiver skips the message instead of crashing. Part of the node
runtime: Python 3.8.

Features envelope (binary, little-endian), in front of the codec blob on ``features/<tail>/<head>``::

    magic  b"SIF1"   4 bytes
    sent   float64   wall-clock seconds when published (transit = receive time - sent)
    count  uint8     number of stage timings that follow (forward compatible: extra ones are ignored)
    stages float32 × count   capture_ms, preprocess_ms, head_ms, encode_ms (per batch), clock_offset_ms
                             (the head's estimate of tail clock − head clock; 0 when unknown)
    blob   rest      the codec's self-describing payload
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic import BaseModel as _BaseModel
from pydantic.dataclasses import dataclass
from typing_extensions import Annotated

from splitinfer.errors import ProtocolError

__all__ = [
    "HEAD_STAGES",
    "IMAGE_FORMATS",
    "MODES",
    "Assignment",
    "DeviceInfo",
    "Override",
    "Policy",
    "ProtocolError",
    "TableRef",
    "pack_features",
    "parse_json",
    "unpack_features",
]

ENVELOPE_MAGIC = b"SIF1"
_ENVELOPE = struct.Struct("<4sdB")
HEAD_STAGES = ("capture_ms", "preprocess_ms", "head_ms", "encode_ms", "clock_offset_ms")
MAX_JSON_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
ROLES = ("head", "tail", "coordinator")
MODES = ("split", "local", "offload")
IMAGE_FORMATS = ("jpeg", "webp", "avif")
_EXPLANATION = ("reason", "predicted_ms", "predicted_fps", "prediction")  # why a cut was chosen: not the pipeline
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def pack_features(blob: bytes, sent: float, stages: Mapping[str, float]) -> bytes:
    """The envelope (publish time, the head's stage timings) in front of a codec blob."""
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
    except RecursionError:
        raise ProtocolError(f"{what}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    if _depth(data) > MAX_JSON_DEPTH:
        raise ProtocolError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (a deep document must not exhaust the stack here either)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest


T = TypeVar("T")


def validated(kind: Type[T], data: Mapping[str, Any], what: str) -> T:
    """``kind(**data)`` with pydantic's checks; ProtocolError (one line per problem) if they fail."""
    try:
        return kind(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
                             for e in exc.errors(include_url=False)[:5])
        raise ProtocolError(f"{what}: {problems}") from None
    except TypeError as exc:  # a key that is not an identifier
        raise ProtocolError(f"{what}: {exc}") from None




# ---- field types: every number a message can carry is range-checked here ----------------------------------------

_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True)  # newer senders may add fields: older readers skip
Ms = Annotated[float, Field(ge=0.0, le=1e7, allow_inf_nan=False)]  # a duration in ms (at most ~3 hours)
Text = Annotated[str, Field(max_length=1024)]
DeviceId = Annotated[str, Field(pattern=f"^{_ID}$")]
Sha256 = Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]
ImgSize = Annotated[int, Field(ge=32, le=4096, multiple_of=32)]
Cut = Annotated[str, Field(pattern=r"^([abcd]|auto|local|offload|[1-9][0-9]{0,3})?$")]
Mode = Annotated[str, Field(pattern="^(split|local|offload)$")]
ImageFormat = Annotated[str, Field(pattern="^(jpeg|webp|avif)$")]
MAX_LAYERS = 1024


def _settings(value: Dict[str, Any], what: str) -> Dict[str, Any]:
    """Codec settings: at most 32 keys, identifiers, scalar values (the codec checks their meaning)."""
    if len(value) > 32:
        raise ValueError(f"{what}: at most 32 settings")
    for key, item in value.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,31}", key):
            raise ValueError(f"{what}: {key!r} is not a setting name")
        if not (item is None or isinstance(item, (bool, int, str)) or (isinstance(item, float) and
                                                                       math.isfinite(item))):
            raise ValueError(f"{what}: {key} must be a number, a string or a boolean")
        if isinstance(item, str) and len(item) > 256:
            raise ValueError(f"{what}: {key} is too long")
    return value


def _image_settings(value: Dict[str, Any]) -> Dict[str, Any]:
    """Offload's image codec: ``format`` jpeg|webp|avif, ``quality`` 1..100."""
    if set(value) - {"format", "quality"}:
        raise ValueError(f"image: unknown settings {sorted(set(value) - {'format', 'quality'})}")
    fmt, quality = value.get("format", "webp"), value.get("quality", 80)
    if fmt not in ("jpeg", "webp", "avif"):
        raise ValueError(f"image: format must be jpeg, webp or avif, got {fmt!r}")
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise ValueError(f"image: quality must be 1..100, got {quality!r}")
    return {"format": fmt, "quality": quality} if value else {}


CodecSettingsField = Annotated[Dict[str, Any], AfterValidator(lambda value: _settings(value, "codec"))]
ImageSettingsField = Annotated[Dict[str, Any], AfterValidator(_image_settings)]


class _Profile(_BaseModel):
    """What a node may say about its own speed (``DeviceInfo.profile``); see splitinfer.splitting.profile."""

    model_config = ConfigDict(strict=True, extra="ignore")

    class _CutSize(_BaseModel):
        model_config = ConfigDict(strict=True, extra="ignore")
        bytes: Annotated[float, Field(ge=0.0, le=1e10, allow_inf_nan=False)]
        encode_ms: Ms = 0.0
        decode_ms: Ms = 0.0

    class _Link(_BaseModel):
        model_config = ConfigDict(strict=True, extra="ignore")
        bandwidth_bps: Annotated[float, Field(gt=0.0, le=1e15, allow_inf_nan=False)]
        rtt_ms: Ms = 0.0
        probe_bytes: Annotated[int, Field(ge=0, le=1 << 31)] = 0
        at: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0

    version: Optional[Annotated[int, Field(ge=0, le=1000)]] = None
    model: Optional[Text] = None
    fingerprint: Optional[Annotated[str, Field(max_length=128)]] = None
    imgsz: Optional[ImgSize] = None
    batch: Optional[Annotated[int, Field(ge=1, le=256)]] = None
    device: Optional[Annotated[str, Field(max_length=64)]] = None
    num_layers: Optional[Annotated[int, Field(ge=1, le=MAX_LAYERS)]] = None
    presets: Optional[Dict[Annotated[str, Field(pattern="^[abcd]$")],
                           Annotated[int, Field(ge=1, le=MAX_LAYERS)]]] = None
    layer_ms: Optional[Annotated[List[Ms], Field(max_length=MAX_LAYERS)]] = None
    batch_layer_ms: Optional[Annotated[List[Ms], Field(max_length=MAX_LAYERS)]] = None
    preprocess_ms: Optional[Ms] = None
    postprocess_ms: Optional[Ms] = None
    cuts: Optional[Dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,3}$")], _CutSize]] = None
    codec: Optional[CodecSettingsField] = None
    tables: Optional[Annotated[List[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(max_length=16)]] = None
    link: Optional[_Link] = None
    images: Optional[Dict[ImageFormat, _CutSize]] = None
    whole_postprocess_ms: Optional[Ms] = None
    head_scale: Optional[Annotated[float, Field(gt=0.0, le=1e3, allow_inf_nan=False)]] = None
    tail_scale: Optional[Annotated[float, Field(gt=0.0, le=1e3, allow_inf_nan=False)]] = None


def _profile(value: Dict[str, Any]) -> Dict[str, Any]:
    """A profile as plain data again, holding only the fields the schema knows, each checked."""
    if len(value) > 64:
        raise ValueError("profile: too many fields")
    return _Profile.model_validate(value).model_dump(exclude_none=True)


# ---- the messages -------------------------------------------------------------------------------------------------


@dataclass(config=_STRICT)
class TableRef:
    """A calibration table of the codec, by its file name in the nodes' model folder and the file's sha256."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _table_refs(value: Any) -> Any:
    """JSON objects (``{"name", "sha256"}``) as TableRef; anything else is left for the strict check to refuse."""
    if isinstance(value, list):
        return [validated(TableRef, item, "table") if isinstance(item, dict) else item for item in value]
    return value


Tables = Annotated[List[TableRef], Field(max_length=16), BeforeValidator(_table_refs)]


@dataclass(config=_STRICT)
class DeviceInfo:
    """What a node says about itself on ``devices/<id>/info`` (retained). Its ``role`` is what it claims: the
    coordinator takes roles from the fleet inventory in the policy when there is one. ``device`` is the torch
    device it runs on; ``failure`` why it cannot serve (with state ``failed``), empty otherwise."""

    id: DeviceId
    role: Annotated[str, Field(pattern="^(head|tail|coordinator)$")]
    version: Annotated[str, Field(max_length=64)] = ""
    arch: Annotated[str, Field(max_length=64)] = ""
    accelerator: Annotated[str, Field(max_length=256)] = "cpu"
    torch: Annotated[str, Field(max_length=64)] = ""
    cuda: Annotated[str, Field(max_length=64)] = ""
    memory_mb: Annotated[int, Field(ge=0, le=1 << 40)] = 0
    python: Annotated[str, Field(max_length=64)] = ""
    device: Annotated[str, Field(max_length=64)] = ""
    failure: Text = ""
    profile: Dict[str, Any] = field(default_factory=dict)

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: Dict[str, Any]) -> Dict[str, Any]:
        return _profile(value)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> DeviceInfo:
        data = parse_json(payload, "device info")
        return validated(cls, data, f"device info of {str(data.get('id'))[:64]!r}")


@dataclass(config=_STRICT)
class Assignment:
    """What the coordinator tells a node on ``devices/<id>/assign`` (retained).

    For a head: the model to load (a name under the node's model folder, and its sha256 when it is a checkpoint),
    the input size, the ``mode`` (``split`` at ``cut``: ``a|b|c|d`` or a layer number, the head resolves it on
    its model; ``local``: the whole model on the head, which publishes the detections itself; ``offload``: the
    letterboxed frame compressed with the image codec ``image`` to the tail, which runs the whole model — only for
    heads the operator allowed it), the codec settings (``quality`` where a calibration table in ``tables`` covers
    the cut, else ``bits``; ``keyframe_interval`` for delta frames), the tail to send to (``route``; empty while
    no tail is live), the batch size, and whether the head may fall back to local by itself (``fallback``) when it
    has no live tail or its tail stops answering. For a tail: model, imgsz, batch, ``max_wait_ms`` and the
    ``tables`` to decode with; ``heads`` lists the heads routed to it.

    ``epoch`` is the coordinator's start (wall-clock seconds) and ``generation`` counts changes within it: a node
    follows an assignment whose ``(epoch, generation)`` is newer than its own, so a restarted coordinator (whose
    retained state may be older than what the nodes hold) is followed at once.

    Why the cut was chosen (optional, absent from older coordinators): ``reason`` in words, ``predicted_ms``
    (end-to-end latency the cost model predicts for this cut), ``predicted_fps`` (frames per second the head
    can sustain) and ``prediction`` (the stages behind it: head, transfer and tail ms, bytes, the link used).
    """

    generation: Annotated[int, Field(ge=0, le=1 << 62)]
    model: Text
    sha256: Sha256 = ""
    imgsz: ImgSize = 640
    cut: Cut = "b"
    codec: CodecSettingsField = field(default_factory=dict)
    tables: Tables = field(default_factory=list)
    mode: Mode = "split"
    image: ImageSettingsField = field(default_factory=dict)
    fallback: bool = True
    route: Annotated[str, Field(pattern=f"^({_ID})?$")] = ""
    batch: Annotated[int, Field(ge=1, le=256)] = 1
    max_wait_ms: Annotated[float, Field(ge=0.0, le=10_000.0, allow_inf_nan=False)] = 5.0
    heads: Annotated[List[DeviceId], Field(max_length=4096)] = field(default_factory=list)
    epoch: Annotated[float, Field(ge=0.0, le=1e11, allow_inf_nan=False)] = 0.0
    reason: Text = ""
    predicted_ms: Optional[Ms] = None
    predicted_fps: Optional[Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]] = None
    prediction: Dict[str, Any] = field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("a model name has no NUL characters")
        return value

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def newer_than(self, other: Optional[Assignment]) -> bool:
        """Whether a node holding ``other`` should follow this one (see ``epoch``)."""
        return other is None or (self.epoch, self.generation) > (other.epoch, other.generation)

    def same_pipeline(self, other: Optional[Assignment]) -> bool:
        """True when only the route (or the generation) differs: no model reload needed."""
        if other is None:
            return False
        mine, theirs = asdict(self), asdict(other)
        for key in ("generation", "epoch", "route", "heads", *_EXPLANATION):
            mine.pop(key), theirs.pop(key)
        return bool(mine == theirs)

    @classmethod
    def from_json(cls, payload: bytes) -> Assignment:
        data = parse_json(payload, "assignment")
        if isinstance(data.get("cut"), int) and not isinstance(data.get("cut"), bool):
            data["cut"] = str(data["cut"])
        return validated(cls, data, "assignment")


@dataclass(config=_STRICT)
class Override:
    """Per-device settings that win over the fleet defaults."""

    cut: Optional[Cut] = None
    codec: CodecSettingsField = field(default_factory=dict)
    batch: Optional[Annotated[int, Field(ge=1, le=64)]] = None


@dataclass(config=_STRICT)
class Policy:
    """The fleet's wishes: which model, how heads cut and encode by default, per-device overrides, and the
    inventory (``roles``: device id → ``head``/``tail``, from fleet.yaml). With an inventory the coordinator
    plans only the devices it lists, in the roles it gives; without one (a one-machine run), devices' own
    claims are taken, and the coordinator says so."""

    model: Text
    sha256: Sha256 = ""
    imgsz: ImgSize = 640
    cut: Cut = "b"
    codec: CodecSettingsField = field(default_factory=lambda: {"bits": 4})
    tables: Tables = field(default_factory=list)
    batch: Annotated[int, Field(ge=1, le=64)] = 1
    tail_batch: Annotated[int, Field(ge=1, le=256)] = 8
    max_wait_ms: Annotated[float, Field(ge=0.0, le=10_000.0, allow_inf_nan=False)] = 5.0
    overrides: Dict[DeviceId, Override] = field(default_factory=dict)
    auto_fallback: Annotated[str, Field(pattern=r"^([abcd]|[1-9][0-9]{0,3})$")] = "b"
    roles: Dict[DeviceId, Annotated[str, Field(pattern="^(head|tail)$")]] = field(default_factory=dict)
    image: ImageSettingsField = field(default_factory=lambda: {"format": "webp", "quality": 80})
    offload: List[DeviceId] = field(default_factory=list)
    no_fallback: List[DeviceId] = field(default_factory=list)

    def may_offload(self, device: str) -> bool:
        """Whether the operator allowed ``device`` to send its frames (fleet.yaml ``allow_offload``)."""
        return device in self.offload

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        raw = dict(data)
        overrides = raw.pop("overrides", None) or {}
        if not isinstance(overrides, dict):
            raise ProtocolError("policy: overrides must be a mapping of device id to settings")
        built = {k: validated(Override, v if isinstance(v, dict) else {"": v}, f"policy: overrides.{k}")
                 for k, v in overrides.items()}
        return validated(cls, dict(raw, overrides=built), "policy")

    def with_roles(self, roles: Mapping[str, str]) -> Policy:
        return replace(self, roles=dict(roles))
