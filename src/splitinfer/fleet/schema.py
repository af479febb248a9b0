"""The fleet.yaml schema: pydantic models at the config boundary.

Everything here is plain data. Field paths in error messages follow the YAML (``devices[2].role``); see
:mod:`splitinfer.fleet.store` for how a pydantic ``ValidationError`` becomes a :class:`FleetConfigError`.

Reference (see docs/deploying.md for the long form)::

    fleet: traffic-a                              # name: [A-Za-z0-9][A-Za-z0-9_.-]*, used in topics and labels
    broker: {url: mqtt://10.0.0.2:1883, username: splitinfer, password_env: SPLITINFER_MQTT_PASSWORD,
             tls: {ca: /etc/ssl/ca.pem}}          # paths on the devices
    model: {path: yolo11n.pt, sha256: "<64 hex>", imgsz: 640,    # or {name: yolo11n}
            tables: [{path: yolo11n-d.npz, sha256: "<64 hex>"}]}  # splitctl calibrate: the codec, per cut
    defaults: {cut: b, quality: 50, keyframe_interval: 10, batch: 1, device: auto}
    # cut a|b|c|d|auto|local|offload|N; quality 1..100 where a table covers the cut, else bits 2..8 or 16/32
    images: {head: registry.lan/splitinfer-head:0.1.0, tail: registry.lan/splitinfer-tail:0.1.0}
    devices:
      - {id: jetson-01, role: head, docker: "ssh://nvidia@jetson-01", source: "rtsp://cam-01/stream",
         cut: a, runtime: nvidia, device: cuda}
      - {id: tail-01, role: tail, docker: "tcp://gpu-01:2376", docker_tls: ~/.docker/gpu-01, gpus: all, half: true}
"""

from __future__ import annotations

import re
from typing import Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CUT_PRESETS",
    "Broker",
    "BrokerTLS",
    "BuildSpec",
    "Cut",
    "Defaults",
    "Device",
    "FieldValueError",
    "Fleet",
    "ImageRef",
    "Images",
    "ModelSpec",
    "TableSpec",
    "parse_cut",
    "validate_bits",
]

CUT_PRESETS = ("a", "b", "c", "d")
"""Named cut presets; the split part maps them to layer indices per model family."""

Cut = Union[int, str]
"""A cut: one of :data:`CUT_PRESETS`, ``"auto"`` (the coordinator chooses), or a layer index ≥ 1."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TORCH_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_DOCKER_SCHEMES = ("unix://", "tcp://", "ssh://")
_BROKER_SCHEMES = ("mqtt://", "mqtts://", "ws://", "wss://")
KEYFRAME_INTERVAL = 10
"""Heads send a keyframe every this many frames and delta frames between (fixed cameras; 0 turns it off)."""


def parse_cut(value: object) -> Cut:
    """Normalise a cut given in YAML or on the command line: ``"b"`` → ``"b"``, ``"11"`` or ``11`` → ``11``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a, b, c, d, auto, local, offload or a layer index ≥ 1, got {value!r}")
    if isinstance(value, int):
        if value >= 1:
            return value
        raise ValueError(f"expected a layer index ≥ 1, got {value}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in CUT_PRESETS or text in ("auto", "local", "offload"):
            return text
        if text.isdigit():
            return parse_cut(int(text))
    raise ValueError(f"expected a, b, c, d, auto, local, offload or a layer index ≥ 1, got {value!r}")


def validate_bits(value: int) -> int:
    """Quantized widths 2..8, or 16/32 to pass tensors through at half/full float precision."""
    if isinstance(value, bool) or not isinstance(value, int) or not (2 <= value <= 8 or value in (16, 32)):
        raise ValueError(f"expected 2..8 (quantized) or 16/32 (passthrough), got {value!r}")
    return value


def _check_torch_device(value: Optional[str]) -> Optional[str]:
    if value is not None and not _TORCH_DEVICE.match(value.strip().lower()):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N (the torch device the node runs on), got {value!r}")
    return value.strip().lower() if value is not None else None


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-63 characters of letters, digits, '-', '_' or '.', starting with a letter"
            " or digit (it becomes part of MQTT topics and container names)"
        )
    return value


class FieldValueError(ValueError):
    """A ValueError raised by a whole-model check that knows which of the model's fields is at fault.

    ``field`` is relative to the model that raises it (``source``, ``devices[3].id``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerTLS(_Model):
    """TLS files for the MQTT connection. Paths are on the devices; they are mounted read-only."""

    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None

    @model_validator(mode="after")
    def _cert_with_key(self) -> BrokerTLS:
        if bool(self.cert) != bool(self.key):
            raise ValueError("give both cert and key for client authentication, or neither")
        return self


class Broker(_Model):
    """``url`` is where devices connect; ``operator_url`` (default: the same host, port + 1) where the coordinator
    and ``splitctl`` do — a listener of their own, so a device's credentials cannot take over their sessions."""

    url: str
    operator_url: Optional[str] = None
    username: Optional[str] = None
    password_env: Optional[str] = Field(default=None, description="name of the environment variable with the password")
    tls: Optional[BrokerTLS] = None

    @field_validator("url", "operator_url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.startswith(_BROKER_SCHEMES) or len(value.split("://", 1)[1]) == 0):
            raise ValueError(f"expected mqtt://host:port (or mqtts://, ws://, wss://), got {value!r}")
        return value

    def operator_endpoint(self) -> str:
        """The operators' listener: ``operator_url``, or the devices' host with the port after theirs."""
        if self.operator_url:
            return self.operator_url
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        port = parts.port or (8883 if parts.scheme in ("mqtts", "wss") else 1883)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}:{port + 1}"

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"expected the name of an environment variable, got {value!r}")
        return value


class TableSpec(_Model):
    """A calibration table file of the codec (``splitctl calibrate`` writes it and prints this entry)."""

    path: str
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA256.match(value.lower()):
            raise ValueError(f"expected 64 hexadecimal digits (sha256sum of the table file), got {value!r}")
        return value.lower()


class ModelSpec(_Model):
    path: Optional[str] = None
    name: Optional[str] = None
    sha256: Optional[str] = None
    imgsz: int = 640
    tables: List[TableSpec] = Field(default_factory=list, max_length=16,
                                    description="calibration tables of the codec, one per cut; copied next to the "
                                                "model")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _SHA256.match(value.lower()):
            raise ValueError(f"expected 64 hexadecimal digits (sha256sum of the model file), got {value!r}")
        return value.lower() if value else value

    @field_validator("imgsz")
    @classmethod
    def _imgsz(cls, value: int) -> int:
        if value < 32 or value % 32:
            raise ValueError(f"expected a multiple of 32 (the model's largest stride), got {value}")
        return value

    @model_validator(mode="after")
    def _path_or_name(self) -> ModelSpec:
        if bool(self.path) == bool(self.name):
            raise ValueError("give exactly one of path (a .pt/.yaml file) or name (e.g. yolo11n)")
        names = [t.path.replace("\\", "/").rsplit("/", 1)[-1] for t in self.tables]
        model = (self.path or "").replace("\\", "/").rsplit("/", 1)[-1]
        clash = sorted({n for n in names if names.count(n) > 1 or n == model})
        if clash:
            raise ValueError(f"every file lands in one model folder by its name: {clash[0]!r} is used twice")
        return self


class ImageCodec(_Model):
    """Offload's image codec, for the heads allowed to offload."""

    format: Literal["jpeg", "webp", "avif"] = "webp"
    quality: int = Field(default=80, ge=1, le=100)


class Defaults(_Model):
    cut: Cut = "b"
    bits: int = 4
    quality: int = Field(default=50, ge=1, le=100)
    keyframe_interval: int = Field(default=KEYFRAME_INTERVAL, ge=0, le=10_000)
    batch: int = Field(default=1, ge=1)
    image: ImageCodec = ImageCodec()
    device: str = "auto"
    half: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        return _check_torch_device(value) or "auto"

    @field_validator("cut", mode="before")
    @classmethod
    def _cut(cls, value: object) -> Cut:
        return parse_cut(value)

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        return validate_bits(value)


class BuildSpec(_Model):
    """Build the image on the device's engine when it is neither present nor pullable."""

    context: str = "."
    dockerfile: str

    # Relative paths are resolved against the fleet file's folder by the deployer.


class ImageRef(_Model):
    name: str
    build: Optional[BuildSpec] = None


class Images(_Model):
    head: ImageRef = ImageRef(name="splitinfer-head:latest", build=BuildSpec(dockerfile="Dockerfile.jetson"))
    tail: ImageRef = ImageRef(name="splitinfer-tail:latest", build=BuildSpec(dockerfile="Dockerfile.tail"))

    @field_validator("head", "tail", mode="before")
    @classmethod
    def _short(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value


class Device(_Model):
    id: str
    role: Literal["head", "tail"]
    docker: str = Field(description="unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host")
    docker_tls: Optional[str] = Field(default=None, description="folder with ca.pem, cert.pem, key.pem (tcp://)")
    source: Optional[str] = None
    cut: Optional[Cut] = None
    quality: Optional[int] = Field(default=None, ge=1, le=100)
    keyframe_interval: Optional[int] = Field(default=None, ge=0, le=10_000,
                                             description="heads: 0 for a moving camera (no delta frames)")
    runtime: Optional[Literal["nvidia"]] = None
    gpus: Optional[Union[Literal["all"], int]] = None
    device: Optional[str] = Field(default=None, description="torch device: auto, cpu, cuda, cuda:N")
    half: Optional[bool] = None
    env: Dict[str, str] = Field(default_factory=dict)
    volumes: List[str] = Field(default_factory=list)
    devices: List[str] = Field(default_factory=list)
    image: Optional[str] = None
    command: Optional[List[str]] = Field(default=None, description="replaces `splitctl node <role> ...`")
    allow_offload: bool = Field(default=False, description="heads: may send their frames to a tail (offload)")
    local_fallback: bool = Field(default=True, description="heads: run the whole model here when no tail answers")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        from splitinfer.broker.topics import RESERVED_IDS

        if value.lower() in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved (the coordinator's and the operators' own names); pick another id")
        return _check_name(value, "id")

    @field_validator("docker")
    @classmethod
    def _docker(cls, value: str) -> str:
        if not value.startswith(_DOCKER_SCHEMES) or len(value.split("://", 1)[1]) == 0:
            raise ValueError(f"expected unix://PATH, tcp://HOST:PORT or ssh://USER@HOST, got {value!r}")
        return value

    @field_validator("cut", mode="before")
    @classmethod
    def _cut(cls, value: object) -> Optional[Cut]:
        return None if value is None else parse_cut(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: Optional[str]) -> Optional[str]:
        return _check_torch_device(value)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: object) -> object:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if value is None or value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"expected 'all' or a GPU count ≥ 1, got {value!r}")

    @field_validator("env")
    @classmethod
    def _env(cls, value: Dict[str, str]) -> Dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: List[str]) -> List[str]:
        for item in value:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise ValueError(f"expected HOST_PATH:CONTAINER_PATH[:ro|rw], got {item!r}")
            if not parts[1].startswith("/"):
                raise ValueError(f"the container path must be absolute, got {item!r}")
        return value

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: List[str]) -> List[str]:
        for item in value:
            if not item.startswith("/dev/"):
                raise ValueError(f"expected a device node such as /dev/video0[:/dev/video0[:rwm]], got {item!r}")
        return value

    @model_validator(mode="after")
    def _by_role(self) -> Device:
        if self.role == "head" and not self.source:
            raise FieldValueError("source", "a head needs a source: camera index (0), file, rtsp:// URL or csi://0")
        if self.role == "tail" and self.source:
            raise FieldValueError("source", "only heads have a source; remove it from this tail")
        if self.role == "tail" and self.cut is not None:
            raise FieldValueError("cut", "the cut is set on heads (a tail runs whatever its heads send); remove it")
        if self.cut == "offload" and not self.allow_offload:
            raise FieldValueError("cut", "offload sends this camera's frames to a tail: set allow_offload: true on "
                                         "this device to allow it (frames stay on the camera otherwise)")
        if self.role == "tail" and (self.allow_offload or not self.local_fallback):
            raise FieldValueError("allow_offload", "allow_offload and local_fallback are head settings")
        if self.role == "tail" and (self.quality is not None or self.keyframe_interval is not None):
            raise FieldValueError("quality", "quality and keyframe_interval are head settings (a head encodes, its "
                                             "tail decodes whatever it is sent)")
        if self.runtime == "nvidia" and self.gpus is not None:
            raise FieldValueError(
                "gpus", "use runtime: nvidia (Jetson) or gpus (x86 with the NVIDIA toolkit), not both"
            )
        if self.source and self.source.startswith("csi://") and self.runtime != "nvidia":
            raise FieldValueError(
                "runtime", "a csi:// camera is read through JetPack's camera stack, which the nvidia runtime "
                "mounts into the container: add runtime: nvidia"
            )
        return self

    @property
    def has_gpu(self) -> bool:
        """Whether the container gets a GPU: the nvidia runtime (Jetson) or a GPU request (x86)."""
        return self.runtime == "nvidia" or self.gpus is not None


class Fleet(_Model):
    fleet: str
    broker: Broker
    model: Optional[ModelSpec] = None
    defaults: Defaults = Defaults()
    images: Images = Images()
    devices: List[Device] = Field(default_factory=list)

    @field_validator("fleet")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "fleet name")

    @model_validator(mode="after")
    def _unique_ids(self) -> Fleet:
        seen: Dict[str, int] = {}
        for index, device in enumerate(self.devices):
            if device.id in seen:
                raise FieldValueError(
                    f"devices[{index}].id",
                    f"duplicate id {device.id!r} (already used by devices[{seen[device.id]}]); ids must be unique",
                )
            seen[device.id] = index
        return self

    @model_validator(mode="after")
    def _accelerators(self) -> Fleet:
        for index, device in enumerate(self.devices):
            if self.device_for(device).startswith("cuda") and not device.has_gpu:
                where = "device" if device.device else "defaults.device"
                raise FieldValueError(
                    f"devices[{index}].device",
                    f"{self.device_for(device)} (from {where}) needs the GPU passed into the container: add "
                    "runtime: nvidia (Jetson) or gpus: all (x86 with the NVIDIA Container Toolkit), or use auto",
                )
            if self.half_for(device) and (not device.has_gpu or self.device_for(device) == "cpu"):
                raise FieldValueError(
                    f"devices[{index}].half",
                    "half precision runs on the GPU: give the device runtime: nvidia (Jetson) or gpus (x86) and "
                    "device auto or cuda, or drop half (torch 1.11, the Jetson image's, has no fp16 on the CPU)",
                )
        return self

    def device(self, device_id: str) -> Device:
        for device in self.devices:
            if device.id == device_id:
                return device
        known = ", ".join(d.id for d in self.devices) or "none"
        raise KeyError(f"no device {device_id!r} in fleet {self.fleet!r} (devices: {known})")

    def device_for(self, device: Device) -> str:
        """The torch device the node runs on: the device's own, else the fleet default (``auto``)."""
        return device.device or self.defaults.device

    def half_for(self, device: Device) -> bool:
        return self.defaults.half if device.half is None else device.half

    def cut_for(self, device: Device) -> Cut:
        return device.cut if device.cut is not None else self.defaults.cut

    def image_for(self, device: Device) -> ImageRef:
        ref = self.images.head if device.role == "head" else self.images.tail
        # A per-device image replaces the name; building is only offered for the fleet's own images.
        return ImageRef(name=device.image) if device.image else ref
