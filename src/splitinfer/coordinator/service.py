"""The coordinator process: watches devices/+/info and devices/+/state, publishes devices/<id>/assign.

Assignments are retained, with a generation per device, so any party that restarts recovers the state: the
coordinator itself reads the retained assignments back before it plans. When a tail's state turns offline (its
last will), its heads are re-planned onto live tails at once.

Nodes report their per-layer profiles (and heads their link to the broker) in their retained info; the planner
uses them for ``cut="auto"`` and for the predicted latency in every assignment. A new profile re-plans at once;
a new link measurement only when its bandwidth moved by more than ``replan_fraction`` since the last plan.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional

from splitinfer.broker.client import Message, MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment, DeviceInfo, parse_json
from splitinfer.broker.topics import Topics
from splitinfer.errors import SplitInferError

from .planner import DeviceState, Policy, plan

__all__ = ["Coordinator"]

log = logging.getLogger("splitinfer.coordinator")

COORDINATOR_ID = "coordinator"


class Coordinator:
    def __init__(self, config: BrokerConfig, topics: Topics, policy: Policy, *, settle: float = 0.3,
                 replan_fraction: float = 0.25) -> None:
        self.topics = topics
        self.policy = policy
        self.settle = settle
        self.replan_fraction = replan_fraction
        self._planned_links: Dict[str, float] = {}  # head -> bandwidth the last plan used
        self.devices: Dict[str, DeviceState] = {}
        self.infos: Dict[str, DeviceInfo] = {}
        self.assignments: Dict[str, Assignment] = {}
        self.bad_messages = 0
        config = config.with_client_id(config.client_id or f"{topics.fleet}-{COORDINATOR_ID}")
        self.mqtt = MqttClient(config, state_topic=topics.state(COORDINATOR_ID))
        self._subs = [
            self.mqtt.subscribe(topic, qos=1, maxsize=10000, drop="newest")
            for topic in (topics.all_devices("info"), topics.all_devices("state"), topics.all_devices("assign"),
                          topics.policy())
        ]
        self.changed = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.mqtt.connect(timeout=30.0)
        self.mqtt.publish(self.topics.policy(), _policy_json(self.policy), qos=1, retain=True)
        connects = self.mqtt.counters()["connects"]
        dirty_since: Optional[float] = time.monotonic()  # plan once retained state has arrived
        try:
            while not stop.is_set():
                if any([self._absorb(msg) for msg in self._drain(timeout=0.1)]):
                    dirty_since = dirty_since or time.monotonic()
                now_connects = self.mqtt.counters()["connects"]
                if now_connects != connects and self.mqtt.connected:  # broker restarted: it may have lost them
                    connects = now_connects
                    self._republish()
                if dirty_since is not None and time.monotonic() - dirty_since >= self.settle:
                    dirty_since = None
                    self._replan()
        finally:
            self.mqtt.close()

    def _drain(self, timeout: float) -> List[Message]:
        messages = [m for sub in self._subs for m in sub.drain()]
        if not messages:
            first = self._subs[1].get(timeout=timeout)  # state changes are what we wait for
            messages = ([first] if first else []) + [m for sub in self._subs for m in sub.drain()]
        return messages

    def _absorb(self, msg: Message) -> bool:
        """Update the registry from one message; True if planning inputs changed."""
        try:
            parsed = self.topics.parse(msg.topic)
        except SplitInferError:
            return False
        if parsed.kind != "policy" and parsed.device == COORDINATOR_ID:
            return False
        try:
            return self._absorb_kind(parsed.kind, parsed.device, msg.payload)
        except SplitInferError as exc:
            self.bad_messages += 1
            log.warning("ignoring %s: %s", msg.topic, exc)
            return False

    def _absorb_kind(self, kind: str, device: str, payload: bytes) -> bool:
        if kind == "policy":
            policy = Policy.from_dict(parse_json(payload, "policy"))
            changed = policy != self.policy
            self.policy = policy
            return changed
        if kind == "assign":  # our own retained word, read back after a restart
            if payload and device not in self.assignments:
                self.assignments[device] = Assignment.from_json(payload)
            return False
        if kind == "info":
            if not payload:
                return False
            info = DeviceInfo.from_json(payload)
            old = self.infos.get(device)
            self.infos[device] = info
            before = self.devices.get(device)
            online = before.online if before else True
            self.devices[device] = DeviceState(device, info.role, online)
            return before != self.devices[device] or self._profile_moved(device, old, info)
        state = payload.decode("utf-8", "replace").strip()
        before = self.devices.get(device)
        if before is None:
            return False  # state before info: wait for the info to know the role
        self.devices[device] = DeviceState(device, before.role, state == "online")
        if before.online != (state == "online"):
            log.info("%s (%s) is %s", device, before.role, state)
            return True
        return False

    def _profile_moved(self, device: str, old: Optional[DeviceInfo], new: DeviceInfo) -> bool:
        """A new profile, or a link whose bandwidth moved by more than ``replan_fraction`` since the last plan."""
        before = dict(old.profile) if old else {}
        after = dict(new.profile)
        link_before, link_after = before.pop("link", None), after.pop("link", None)
        if before != after or bool(link_before) != bool(link_after):
            return True
        if not link_after:
            return False
        planned = self._planned_links.get(device)
        bandwidth = float(link_after.get("bandwidth_bps") or 0.0)
        moved = planned is None or abs(bandwidth - planned) > self.replan_fraction * planned
        if moved:
            log.info("%s: link bandwidth %.3g Mbit/s (planned with %s): re-planning", device, bandwidth / 1e6,
                     f"{planned / 1e6:.3g}" if planned else "none")
        return moved

    def _replan(self) -> None:
        profiles = {device: info.profile for device, info in self.infos.items()}
        for device, profile in profiles.items():
            link = profile.get("link")
            if isinstance(link, dict) and link.get("bandwidth_bps"):
                self._planned_links[device] = float(link["bandwidth_bps"])
        new = plan(self.devices, self.policy, self.assignments, profiles)
        for device, assignment in sorted(new.items()):
            if self.assignments.get(device) != assignment:
                log.info("assign %s gen %d: cut %s route %s heads %s%s", device, assignment.generation,
                         assignment.cut or "-", assignment.route or "-", assignment.heads,
                         f" — {assignment.reason}, predicted {assignment.predicted_ms} ms" if assignment.reason else "")
                self.mqtt.publish(self.topics.assign(device), assignment.to_json(), qos=1, retain=True)
        self.assignments = new
        self.changed.set()

    def _republish(self) -> None:
        self.mqtt.publish(self.topics.policy(), _policy_json(self.policy), qos=1, retain=True)
        for device, assignment in self.assignments.items():
            self.mqtt.publish(self.topics.assign(device), assignment.to_json(), qos=1, retain=True)


def _policy_json(policy: Policy) -> bytes:
    import json

    return json.dumps(policy.to_dict()).encode()
