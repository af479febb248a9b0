"""``splitctl down``: remove what deploy created — each device's ``splitinfer-<id>`` and a ``-previous`` left by
an interrupted deploy — and nothing else: no images, no volumes, no data on the devices, and no container that
does not carry this fleet's labels.

Heads go first, then tails (deploy's order reversed), each stopped with a grace period so the node says
``offline`` before its container is removed. An unreachable engine does not stop the others: it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from splitinfer.errors import DeployError, FleetConfigError
from splitinfer.fleet.schema import Device, Fleet

from .engine import Engine
from .plan import ROLE_ORDER, backup_name, container_name
from .spec import LABEL_DEVICE, LABEL_FLEET
from .state import DeployState

__all__ = ["Removal", "teardown"]

DeviceConnector = Callable[[Device], Engine]
EventSink = Callable[[str, str], None]


@dataclass
class Removal:
    """What ``down`` did on one device: ``status`` is removed, none (nothing there), unreachable or failed."""

    device: str
    role: str
    status: str
    removed: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)  # named like ours, but not this fleet's: left alone
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("removed", "none")

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def connect_engine(device: Device, *, timeout: float = 10.0) -> Engine:
    return Engine.connect(device.docker, device=device.id, tls_dir=device.docker_tls, timeout=timeout)


def teardown(
    fleet: Fleet,
    *,
    only: Sequence[str] = (),
    connect: DeviceConnector = connect_engine,
    stop_timeout: int = 10,
    state: Optional[DeployState] = None,
    on_event: Optional[EventSink] = None,
) -> List[Removal]:
    """Remove the containers deploy made for ``only`` (default: every device); ``state`` forgets them."""
    known = [d.id for d in fleet.devices]
    for device_id in only:
        if device_id not in known:
            raise FleetConfigError(f"no device {device_id!r} in the fleet (devices: {', '.join(known) or 'none'})",
                                   field="--only")
    chosen = sorted((d for d in fleet.devices if not only or d.id in only), key=lambda d: -ROLE_ORDER[d.role])
    event = on_event or (lambda device, message: None)
    results = []
    for device in chosen:
        result = _remove_one(fleet, device, connect, stop_timeout, event)
        if result.ok and state is not None:
            state.forget(device.id)
        results.append(result)
    return results


def _remove_one(fleet: Fleet, device: Device, connect: DeviceConnector, stop_timeout: int,
                event: EventSink) -> Removal:
    result = Removal(device.id, device.role, "none")
    event(device.id, "connecting")
    try:
        engine = connect(device)
    except DeployError as exc:
        result.status, result.message = "unreachable", str(exc)
        return result
    try:
        for name in (container_name(device.id), backup_name(device.id)):
            current = engine.container(name)
            if current is None:
                continue
            if current.labels.get(LABEL_FLEET) != fleet.fleet or current.labels.get(LABEL_DEVICE) != device.id:
                result.kept.append(name)
                continue
            if current.running:
                event(device.id, f"stopping {name}")
                engine.stop(current.id, timeout=stop_timeout)
            event(device.id, f"removing {name}")
            engine.remove(current.id)
            result.removed.append(name)
    except DeployError as exc:
        result.status, result.message = "failed", str(exc)
        return result
    finally:
        engine.close()
    if result.removed:
        result.status = "removed"
    if result.kept:
        result.message = (f"left {', '.join(result.kept)}: not made by deploy for fleet {fleet.fleet} "
                          "(no matching splitinfer labels)")
    return result
