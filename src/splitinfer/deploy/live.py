"""The MQTT-backed runtime hooks: readiness from ``devices/<id>/state``, assignments through the retained
``coordinator/policy`` the coordinator follows, and live status from state, assign and metrics.

When the broker cannot be reached, :func:`connect_live` returns None and deploy/status fall back to the Docker
side alone (the caller says so).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import PurePath
from typing import Any, Dict, Optional

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Override, Policy
from splitinfer.broker.topics import Topics
from splitinfer.errors import TransportError
from splitinfer.fleet.schema import Fleet

from .hooks import Assignment, PendingAssignments, RuntimeHooks, RuntimeStatus

__all__ = ["LiveFleet", "broker_config", "connect_live", "policy_from_fleet", "runtime_hooks"]


def broker_config(fleet: Fleet, client_id: str) -> BrokerConfig:
    """How the operator tools (splitctl, the coordinator) reach the fleet's broker."""
    from splitinfer.fleet.credentials import operator_credentials

    b = fleet.broker
    tls = b.tls
    username, password = operator_credentials(fleet)
    return BrokerConfig.from_url(
        b.url, username=username, password=password, client_id=client_id,
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
        if cut is not None or bits != d.bits or batch != d.batch:
            overrides[device.id] = Override(cut=None if cut is None else str(cut), codec={"bits": bits}, batch=batch)
    return Policy(
        model=model_path(fleet), sha256=(fleet.model.sha256 or "") if fleet.model else "",
        imgsz=fleet.model.imgsz if fleet.model else 640, cut=str(d.cut), codec={"bits": d.bits}, batch=d.batch,
        overrides=overrides,
    )


class LiveFleet:
    """One operator connection to the fleet's broker, serving deploy and status."""

    def __init__(self, fleet: Fleet, client: MqttClient) -> None:
        self.fleet = fleet
        self.topics = Topics(fleet.fleet)
        self.client = client
        self._subs = {kind: client.subscribe(self.topics.all_devices(kind), qos=1, maxsize=10000, drop="oldest")
                      for kind in ("state", "assign", "metrics")}
        self.state: Dict[str, str] = {}
        self.live_online: Dict[str, float] = {}  # devices seen going online while we watched
        self.assign: Dict[str, Dict[str, Any]] = {}
        self.metrics: Dict[str, Dict[str, Any]] = {}
        self.last_seen: Dict[str, float] = {}
        self._assignments: Dict[str, Assignment] = {}
        self._lock = threading.Lock()

    # ---- readiness -------------------------------------------------------------------------------------

    def ready(self, device_id: str) -> bool:
        """True once the node has said ``online`` since we connected (a retained ``online`` from before a
        container was replaced does not count)."""
        self.refresh()
        return self.state.get(device_id) == "online" and device_id in self.live_online

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
            self.state[device] = msg.payload.decode("utf-8", "replace")
            if not msg.retain and self.state[device] == "online":
                self.live_online[device] = msg.received_wall
            return
        try:
            data = json.loads(msg.payload) if msg.payload else {}
        except ValueError:
            return
        if kind == "assign":
            self.assign[device] = data
        else:
            self.metrics[device] = data
            self.last_seen[device] = msg.received_wall

    def device_status(self, device_id: str) -> Optional[RuntimeStatus]:
        if device_id not in self.state and device_id not in self.metrics:
            return None
        m = self.metrics.get(device_id, {})
        a = self.assign.get(device_id, {})
        latency = m.get("latency_ms", {})
        stage = "e2e_ms" if m.get("role") == "tail" else "head_ms"
        cut = m.get("cut") if m.get("cut") is not None else a.get("cut")
        route = a.get("route") or (",".join(a.get("heads", [])) if a.get("heads") else None)
        tail_metrics = self.metrics.get(a.get("route") or "", {})
        measured = tail_metrics.get("e2e_ms_by_head", {}).get(device_id, {}).get("p50")
        return RuntimeStatus(
            state=self.state.get(device_id, "—"), cut="—" if cut in (None, "") else str(cut),
            route=route or "—", fps=m.get("fps"), latency_ms=latency.get(stage, {}).get("p50"),
            bytes_per_frame=m.get("bytes_per_frame"), dropped=m.get("dropped"),
            last_seen=self.last_seen.get(device_id),
            predicted_ms=a.get("predicted_ms"), measured_ms=measured, reason=a.get("reason") or "",
        )

    def close(self) -> None:
        self.client.close(timeout=1.0)


def connect_live(fleet: Fleet, *, timeout: float = 3.0, wait: float = 2.5) -> Optional[LiveFleet]:
    """Connect to the fleet's broker and gather what it has (retained state, a round of metrics); None when it
    cannot be reached."""
    client = MqttClient(broker_config(fleet, f"{fleet.fleet}-splitctl-{os.getpid()}"))
    live = LiveFleet(fleet, client)
    try:
        client.connect(timeout=timeout)
    except TransportError:
        client.close(timeout=0.2)
        return None
    live.refresh(wait=wait)
    return live


def runtime_hooks(fleet: Fleet, *, timeout: float = 3.0) -> RuntimeHooks:
    """The hooks the CLI uses for ``fleet``: MQTT-backed when the fleet's broker answers, the Docker side alone
    (with ``note`` saying why) when it does not."""
    live = connect_live(fleet, timeout=timeout)
    if live is None:
        return RuntimeHooks(
            assignments=PendingAssignments(reason=f"broker {fleet.broker.url} unreachable"),
            note=f"broker {fleet.broker.url} unreachable: MQTT columns empty, assignments not published",
        )
    custom = {d.id for d in fleet.devices if d.command is not None}  # not a splitinfer node: nothing reports

    def ready(device_id: str) -> bool:
        return device_id in custom or live.ready(device_id)

    return RuntimeHooks(readiness=ready, assignments=live, status=live, close=live.close)
