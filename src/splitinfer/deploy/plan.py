"""Fleet → per-device targets → actions. Pure functions: no Docker, no network, easy to test.

A :class:`Target` is what one device should run: the :class:`ContainerSpec` (whose hash decides whether the
container must be recreated) and the :class:`Assignment` (cut, bits, batch: delivered over MQTT, never a reason
to recreate). :func:`decide` compares a target with what the engine reports.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from splitinfer.errors import FleetConfigError
from splitinfer.fleet.credentials import derive_password, fleet_secret
from splitinfer.fleet.schema import Cut, Device, Fleet, parse_cut, validate_bits

from .engine import ContainerState
from .hooks import Assignment
from .models import CACHE_DIR, MODEL_DIR, ModelFile, cache_volume, model_files, models_volume
from .spec import LABEL_DEVICE, LABEL_FLEET, LABEL_HASH, LABEL_ROLE, ContainerSpec

__all__ = [
    "Action",
    "Target",
    "backup_name",
    "container_name",
    "container_spec",
    "decide",
    "node_command",
    "plan_targets",
]

ROLE_ORDER = {"tail": 0, "head": 1}
"""Tails first: heads that come up find a tail to send to."""
ARGUS_SOCKET = "/tmp/argus_socket"
"""nvargus-daemon's socket on a Jetson: a container reads CSI cameras through it (with runtime: nvidia)."""
_VIDEO_NODE = re.compile(r"^/dev/video\d+$")


class Action(str, enum.Enum):
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    KEEP = "keep"


@dataclass(frozen=True)
class Target:
    device: Device
    spec: ContainerSpec
    assignment: Assignment
    build: Optional[Tuple[Path, str]] = None
    """(context, dockerfile) to build the image on the engine when it cannot be pulled."""
    models: Tuple[ModelFile, ...] = ()
    """Files deploy copies into the device's model volume (the fleet's model and calibration table)."""

    @property
    def config_hash(self) -> str:
        return self.spec.labels[LABEL_HASH]


def container_name(device_id: str) -> str:
    return f"splitinfer-{device_id}"


def backup_name(device_id: str) -> str:
    """The name the previous container carries while its replacement proves healthy."""
    return f"splitinfer-{device_id}-previous"


def node_command(fleet: Fleet, device: Device) -> Tuple[str, ...]:
    return ("splitctl", "node", device.role, "--broker", fleet.broker.url, "--fleet", fleet.fleet, "--id", device.id)


def container_spec(fleet: Fleet, device: Device, *, environ: Mapping[str, str] = os.environ) -> ContainerSpec:
    """The container ``device`` should run. ``environ`` supplies the broker password (read at deploy time)."""
    env, secret = _node_env(fleet, device, environ)
    volumes = list(device.volumes)
    tls = fleet.broker.tls
    for path in (tls.ca, tls.cert, tls.key) if tls else ():
        if path:
            volumes.append(f"{path}:{path}:ro")
    volumes += [f"{models_volume(fleet.fleet)}:{MODEL_DIR}:ro", f"{cache_volume(fleet.fleet)}:{CACHE_DIR}:rw"]
    if device.source and device.source.startswith("csi://"):
        volumes.append(f"{ARGUS_SOCKET}:{ARGUS_SOCKET}")  # the host's nvargus-daemon, which owns the CSI cameras
    spec = ContainerSpec(
        name=container_name(device.id),
        image=fleet.image_for(device).name,
        command=tuple(device.command) if device.command else node_command(fleet, device),
        env=env,
        volumes=tuple(volumes),
        devices=_device_nodes(device),
        runtime=device.runtime,
        gpus=None if device.gpus is None else (-1 if device.gpus == "all" else int(device.gpus)),
        secret_env=secret,
    )
    labels = {
        LABEL_FLEET: fleet.fleet,
        LABEL_ROLE: device.role,
        LABEL_DEVICE: device.id,
        LABEL_HASH: spec.config_hash(),
    }
    return ContainerSpec(**{**spec.__dict__, "labels": labels})


def _device_nodes(device: Device) -> Tuple[str, ...]:
    """The device's ``devices``, plus the V4L2 node of a camera source (``0`` or ``/dev/video0``) if missing."""
    nodes = list(device.devices)
    source = device.source or ""
    camera = f"/dev/video{int(source)}" if source.isdigit() else source if _VIDEO_NODE.match(source) else None
    if camera and not any(item.split(":")[0] == camera for item in nodes):
        nodes.append(camera)
    return tuple(nodes)


def _node_env(fleet: Fleet, device: Device, environ: Mapping[str, str]) -> Tuple[Dict[str, str], Tuple[str, ...]]:
    broker = fleet.broker
    # the names splitinfer.broker.BrokerConfig.from_env and `splitctl node` read
    env = {
        "SPLITINFER_BROKER_URL": broker.url,
        "SPLITINFER_FLEET_NAME": fleet.fleet,
        "SPLITINFER_DEVICE_ID": device.id,
        "SPLITINFER_ROLE": device.role,
        "SPLITINFER_DEVICE": fleet.device_for(device),
        "SPLITINFER_MODEL_DIR": MODEL_DIR,
        "SPLITINFER_CACHE": CACHE_DIR,
    }
    if fleet.half_for(device):
        env["SPLITINFER_HALF"] = "1"
    if device.source:
        env["SPLITINFER_SOURCE"] = device.source
    if device.allow_offload:  # the head itself refuses offload unless its operator set this here
        env["SPLITINFER_ALLOW_OFFLOAD"] = "1"
    if broker.tls:
        for key, value in (("CA", broker.tls.ca), ("CERT", broker.tls.cert), ("KEY", broker.tls.key)):
            if value:
                env[f"SPLITINFER_MQTT_{key}_FILE"] = value
    secret: Tuple[str, ...] = ()
    fleet_key = fleet_secret(fleet, environ)
    if fleet_key is not None:  # one MQTT user per device, so the broker's ACL can hold it to its own topics
        env["SPLITINFER_MQTT_USERNAME"] = device.id
        env["SPLITINFER_MQTT_PASSWORD"] = derive_password(fleet_key, fleet.fleet, device.id)
        secret = ("SPLITINFER_MQTT_PASSWORD",)
    env.update(device.env)  # the user's env wins: it is the documented escape hatch
    return env, secret


def plan_targets(
    fleet: Fleet,
    *,
    base_dir: Path = Path("."),
    cut: Optional[str] = None,
    bits: Optional[int] = None,
    only: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    fleet_file: Optional[str] = None,
) -> List[Target]:
    """One target per device in rolling order (tails, then heads; file order within a role).

    ``cut`` and ``bits`` override the fleet's defaults and per-device cuts for this deployment. Model files are
    found (and a ``.pt``'s sha256 checked) relative to ``base_dir``, the fleet file's folder; ``fleet_file`` names
    the file in errors.
    """
    try:
        cut_override = None if cut is None else parse_cut(cut)
    except ValueError as exc:
        raise FleetConfigError(str(exc), field="--cut") from None
    try:
        bits_override = None if bits is None else validate_bits(bits)
    except ValueError as exc:
        raise FleetConfigError(str(exc), field="--bits") from None
    for device_id in only:
        if device_id not in {d.id for d in fleet.devices}:
            known = ", ".join(d.id for d in fleet.devices) or "none"
            raise FleetConfigError(f"no device {device_id!r} in the fleet (devices: {known})", field="--only")
    chosen = [d for d in fleet.devices if not only or d.id in only]
    chosen.sort(key=lambda d: ROLE_ORDER[d.role])  # stable: file order within a role
    models = model_files(fleet, base_dir, fleet_file=fleet_file) if chosen else ()
    targets = []
    for device in chosen:
        assignment = _assignment(fleet, device, cut_override, bits_override)
        spec = container_spec(fleet, device, environ=environ)
        targets.append(Target(device, spec, assignment, _build(fleet, device, base_dir), models))
    return targets


def _assignment(fleet: Fleet, device: Device, cut: Optional[Cut], bits: Optional[int]) -> Assignment:
    model = fleet.model
    device_cut: Optional[Cut] = None
    if device.role == "head":
        device_cut = cut if cut is not None else fleet.cut_for(device)
    return Assignment(
        device_id=device.id,
        role=device.role,
        cut=device_cut,
        bits=bits if bits is not None else fleet.defaults.bits,
        batch=fleet.defaults.batch,
        imgsz=model.imgsz if model else None,
        model=(model.path or model.name) if model else None,
        sha256=model.sha256 if model else None,
    )


def _build(fleet: Fleet, device: Device, base_dir: Path) -> Optional[Tuple[Path, str]]:
    ref = fleet.image_for(device)
    if ref.build is None:
        return None
    return (base_dir / ref.build.context).resolve(), ref.build.dockerfile


def decide(target: Target, current: Optional[ContainerState], *, image_id: Optional[str] = None) -> Tuple[Action, str]:
    """What to do with ``current`` to reach ``target``, and why. ``image_id``: the engine's id for the image."""
    if current is None:
        return Action.CREATE, "no container yet"
    running_hash = current.labels.get(LABEL_HASH, "")
    if running_hash != target.config_hash:
        return Action.RECREATE, f"config changed ({running_hash or 'no hash'} → {target.config_hash})"
    if image_id and current.image_id and current.image_id != image_id:
        return Action.RECREATE, f"image {target.spec.image} was updated"
    if not current.running or current.status == "restarting":
        return Action.START, f"container is {current.status}"
    return Action.KEEP, "unchanged"
