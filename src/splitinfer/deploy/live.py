"""The MQTT-backed runtime hooks: readiness from ``devices/<id>/state``, assignments through the retained
``coordinator/policy`` the coordinator follows, and live status from info, state, assign and metrics.

Whatever a device publishes is read defensively: a payload that is not a JSON object, or a field of the wrong
type, counts as not said (None), never as an error.

When the broker cannot be reached, :func:`connect_live` returns None and deploy/status fall back to the Docker
side alone (the caller says so).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import PurePath
from typing import Any, Dict, List, Optional

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Override, Policy, validated
from splitinfer.broker.topics import Topics
from splitinfer.errors import DeployError, FleetConfigError, TransportError
from splitinfer.fleet.schema import Fleet

from .hooks import Assignment, PendingAssignments, RuntimeHooks, RuntimeStatus

__all__ = ["LiveFleet", "broker_config", "connect_live", "policy_from_fleet", "runtime_hooks"]


def broker_config(fleet: Fleet, client_id: str) -> BrokerConfig:
    """How the operator tools (splitctl, the coordinator) reach the fleet's broker: as the operator user on the
    operators' listener (``broker.operator_url``) when the fleet has a secret (the broker ``splitctl broker``
    renders); on ``broker.url`` when the broker takes anonymous clients (one listener)."""
    from splitinfer.fleet.credentials import operator_credentials

    b = fleet.broker
    tls = b.tls
    username, password = operator_credentials(fleet)
    return BrokerConfig.from_url(
        b.operator_endpoint() if password else b.url, username=username, password=password, client_id=client_id,
        ca_file=tls.ca if tls else None, cert_file=tls.cert if tls else None, key_file=tls.key if tls else None,
    )


def model_path(fleet: Fleet) -> str:
    """The model as the nodes name it: a ``model.path`` file by its name alone, since deploy copies it into each
    device's model folder under that name (wherever it lies on the operator's machine)."""
    spec = fleet.model
    if spec is None:
        return "yolo11n.pt"
    if spec.path:
        return PurePath(spec.path).name
    name = spec.name or "yolo11n"
    return name if name.endswith((".pt", ".yaml", ".yml")) else f"{name}.pt"


def policy_from_fleet(fleet: Fleet, assignments: Optional[Dict[str, Assignment]] = None) -> Policy:
    """The coordinator's policy for ``fleet``: model, defaults, and per-head cut/bits/batch (``assignments`` from
    a deploy win over the file's)."""
    d = fleet.defaults
    overrides: Dict[str, Override] = {}
    for device in fleet.devices:
        if device.role != "head":
            continue
        a = (assignments or {}).get(device.id)
        cut = a.cut if a is not None else device.cut
        bits = a.bits if a is not None else d.bits
        batch = a.batch if a is not None else d.batch
        codec = {"bits": bits}
        if device.quality is not None and device.quality != d.quality:
            codec["quality"] = device.quality
        if device.keyframe_interval is not None and device.keyframe_interval != d.keyframe_interval:
            codec["keyframe_interval"] = device.keyframe_interval
        if cut is not None or codec != {"bits": d.bits} or batch != d.batch:
            overrides[device.id] = Override(cut=None if cut is None else str(cut), codec=codec, batch=batch)
    tables = [{"name": PurePath(t.path).name, "sha256": t.sha256} for t in (fleet.model.tables if fleet.model else [])]
    return validated(Policy, dict(
        model=model_path(fleet), sha256=(fleet.model.sha256 or "") if fleet.model else "",
        imgsz=fleet.model.imgsz if fleet.model else 640, cut=str(d.cut),
        codec={"bits": d.bits, "quality": d.quality, "keyframe_interval": d.keyframe_interval}, tables=tables,
        batch=d.batch,
        overrides=overrides, roles={device.id: device.role for device in fleet.devices},
        image=d.image.model_dump(), offload=[x.id for x in fleet.devices if x.role == "head" and x.allow_offload],
        no_fallback=[x.id for x in fleet.devices if x.role == "head" and not x.local_fallback],
    ), "fleet policy")


class LiveFleet:
    """One operator connection to the fleet's broker, serving deploy and status."""

    def __init__(self, fleet: Fleet, client: MqttClient) -> None:
        self.fleet = fleet
        self.topics = Topics(fleet.fleet)
        self.client = client
        self._subs = {kind: client.subscribe(self.topics.all_devices(kind), qos=1, maxsize=10000, drop="oldest")
                      for kind in ("info", "state", "assign", "metrics")}
        self.state: Dict[str, str] = {}
        self.info: Dict[str, Dict[str, Any]] = {}
        self.live_online: Dict[str, float] = {}  # devices seen going online while we watched
        self.live_failed: Dict[str, float] = {}  # devices seen failing while we watched
        self.assign: Dict[str, Dict[str, Any]] = {}
        self.metrics: Dict[str, Dict[str, Any]] = {}
        self.last_seen: Dict[str, float] = {}
        self._assignments: Dict[str, Assignment] = {}
        self._lock = threading.Lock()

    # ---- readiness -------------------------------------------------------------------------------------

    def ready(self, device_id: str) -> bool:
        """True once the node has said ``online`` since we connected (a retained ``online`` from before a
        container was replaced does not count) and, when its metrics say, that it serves (model loaded). A node
        that says ``failed`` meanwhile raises DeployError with its reason."""
        self.refresh()
        if self.state.get(device_id) == "failed" and device_id in self.live_failed:
            reason = self.info.get(device_id, {}).get("failure") or "no reason given"
            raise DeployError(f"the node failed: {reason}", device=device_id)
        if self.state.get(device_id) != "online" or device_id not in self.live_online:
            return False
        metrics = self.metrics.get(device_id)
        return metrics is None or metrics.get("ready", True) is not False

    # ---- assignments -----------------------------------------------------------------------------------

    def apply_assignment(self, assignment: Assignment) -> str:
        self._assignments[assignment.device_id] = assignment
        policy = policy_from_fleet(self.fleet, self._assignments)
        ok = self.client.publish(self.topics.policy(), json.dumps(policy.to_dict()).encode(), qos=1, retain=True)
        return "published to the coordinator" if ok else "pending (not connected to the broker)"

    # ---- status ----------------------------------------------------------------------------------------

    def refresh(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            for kind, sub in self._subs.items():
                for msg in sub.drain():
                    self._absorb(kind, msg)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def _absorb(self, kind: str, msg: Any) -> None:
        try:
            device = self.topics.parse(msg.topic).device
        except TransportError:
            return
        if kind == "state":
            self.state[device] = msg.payload[:64].decode("utf-8", "replace").strip()
            if not msg.retain and self.state[device] == "online":
                self.live_online[device] = msg.received_wall
            if not msg.retain and self.state[device] == "failed":
                self.live_failed[device] = msg.received_wall
            return
        data = _object(msg.payload)
        if kind == "info":
            self.info[device] = data
        elif kind == "assign":
            self.assign[device] = data
        else:
            self.metrics[device] = data
            self.last_seen[device] = msg.received_wall

    def device_status(self, device_id: str) -> Optional[RuntimeStatus]:
        if device_id not in self.state and device_id not in self.metrics and device_id not in self.info:
            return None
        m = self.metrics.get(device_id, {})
        a = self.assign.get(device_id, {})
        info = self.info.get(device_id, {})
        tail = _text(m.get("role")) == "tail" or _text(info.get("role")) == "tail"
        latency = _dict(_dict(m.get("latency_ms")).get("e2e_ms" if tail else "head_ms")).get("p50")
        cut = _cut(m.get("cut")) or _cut(a.get("cut"))
        route = _text(a.get("route")) or ",".join(_texts(a.get("heads"))) or None
        tail_metrics = self.metrics.get(_text(a.get("route")) or "", {})
        measured = _dict(_dict(tail_metrics.get("e2e_ms_by_head")).get(device_id)).get("p50")
        return RuntimeStatus(
            state=self.state.get(device_id) or None, cut=cut, route=route, fps=_number(m.get("fps")),
            latency_ms=_number(latency), bytes_per_frame=_count(m.get("bytes_per_frame")),
            dropped=_count(m.get("dropped")), drop_ratio=_drop_ratio(m, tail),
            last_seen=self.last_seen.get(device_id),
            predicted_ms=_number(a.get("predicted_ms")), measured_ms=_number(measured),
            reason=_text(a.get("reason")), mode=_text(a.get("mode")) or _text(m.get("mode")),
            device=_text(info.get("device")), failure=_text(info.get("failure")),
        )

    def close(self) -> None:
        self.client.close(timeout=1.0)


def _object(payload: bytes) -> Dict[str, Any]:
    try:
        data = json.loads(payload) if payload else {}
    except (ValueError, RecursionError):  # ValueError includes UnicodeDecodeError
        return {}
    return data if isinstance(data, dict) else {}


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any, limit: int = 300) -> Optional[str]:
    return value[:limit] if isinstance(value, str) and value else None


def _texts(value: Any) -> List[str]:
    return [v[:64] for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _cut(value: Any) -> Optional[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value, 16)


def _drop_ratio(metrics: Dict[str, Any], tail: bool) -> Optional[float]:
    """Dropped over frames seen: a head's captured frames, a tail's processed plus dropped ones."""
    dropped = _count(metrics.get("dropped"))
    seen = _count(metrics.get("frames")) if tail else _count(metrics.get("frames_captured"))
    if dropped is None or seen is None:
        return None
    total = seen + dropped if tail else seen
    return dropped / total if total else None


def connect_live(fleet: Fleet, *, timeout: float = 3.0, wait: float = 2.5) -> Optional[LiveFleet]:
    """Connect to the fleet's broker and gather what it has (retained state, a round of metrics); None when it
    cannot be reached. A broker that refuses the operator's login raises TransportError (``refused``)."""
    client = MqttClient(broker_config(fleet, f"{fleet.fleet}-splitctl-{os.getpid()}"))
    live = LiveFleet(fleet, client)
    try:
        client.connect(timeout=timeout)
    except TransportError as exc:
        client.close(timeout=0.2)
        if exc.refused:
            raise
        return None
    live.refresh(wait=wait)
    return live


def runtime_hooks(fleet: Fleet, *, timeout: float = 3.0, strict: bool = False) -> RuntimeHooks:
    """The hooks the CLI uses for ``fleet``: MQTT-backed when the fleet's broker answers, the Docker side alone
    (with ``note`` saying why) when it does not. A refused login (a wrong fleet secret) is never taken for an
    unreachable broker: with ``strict`` (deploy, before it changes anything) it raises FleetConfigError; else the
    note says so."""
    try:
        live = connect_live(fleet, timeout=timeout)
    except TransportError as exc:
        message = (f"{exc}. The operator's password is derived from the fleet secret in "
                   f"${fleet.broker.password_env or 'SPLITINFER_MQTT_PASSWORD'}: is it the one the broker was "
                   "configured with?")
        if strict:
            raise FleetConfigError(f"{message} Nothing was deployed.", field="broker") from exc
        return RuntimeHooks(assignments=PendingAssignments(reason="broker refused the login"),
                            note=f"{message} MQTT columns are empty.")
    if live is None:
        return RuntimeHooks(
            assignments=PendingAssignments(reason=f"broker {fleet.broker.url} unreachable"),
            note=f"broker {fleet.broker.url} unreachable: MQTT columns empty, assignments not published",
        )
    custom = {d.id for d in fleet.devices if d.command is not None}  # not a splitinfer node: nothing reports

    def ready(device_id: str) -> bool:
        return device_id in custom or live.ready(device_id)

    return RuntimeHooks(readiness=ready, assignments=live, status=live, close=live.close)
