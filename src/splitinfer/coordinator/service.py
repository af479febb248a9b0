"""The coordinator process: watches devices/+/{info,state,metrics}, publishes devices/<id>/assign.

Assignments are retained, with an epoch (this process's start) and a generation per device, so any party that
restarts recovers the state: the coordinator reads the retained assignments back before it plans, and issues
them again in its own epoch, which nodes follow even when the broker's copy is older than theirs (a power loss).
When a tail's state turns offline (its last will), or its metrics stop (a partition the broker has not noticed
yet: within ``stale_after`` seconds), its heads are re-planned onto live tails at once.

Nothing a device publishes is trusted: every message is validated (:mod:`splitinfer.broker.messages`), a bad one
is counted and skipped, and no message can stop this process. Roles come from the fleet inventory in the policy
(``Policy.roles``, from fleet.yaml) when there is one; a device's own claim only without one.

Nodes report their per-layer profiles (and heads their link to the broker) in their retained info; the planner
uses them for ``cut="auto"`` and for the predicted latency in every assignment. A new profile re-plans at once;
a new link measurement only when its bandwidth moved by more than ``replan_fraction`` since the last plan.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Dict, List, Optional

from splitinfer.broker.client import Message, MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment, DeviceInfo, Policy, parse_json
from splitinfer.broker.topics import Topics
from splitinfer.errors import ProtocolError, SplitInferError

from .planner import DeviceState, plan

__all__ = ["COORDINATOR_ID", "Coordinator"]

log = logging.getLogger("splitinfer.coordinator")

COORDINATOR_ID = "coordinator"
SKEW_WARN_S = 2.0  # a node's clock further off than this (beyond network delay) is reported


class Coordinator:
    def __init__(self, config: BrokerConfig, topics: Topics, policy: Policy, *, settle: float = 0.3,
                 replan_fraction: float = 0.25, stale_after: float = 6.0) -> None:
        self.topics = topics
        self.policy = policy
        self.settle = settle
        self.replan_fraction = replan_fraction
        self.stale_after = stale_after
        self.epoch = round(time.time(), 3)
        self._planned_links: Dict[str, float] = {}  # head -> bandwidth the last plan used
        self.devices: Dict[str, DeviceState] = {}
        self.infos: Dict[str, DeviceInfo] = {}
        self.assignments: Dict[str, Assignment] = {}
        self.last_metrics: Dict[str, float] = {}  # device -> monotonic time of its last metrics report
        self.ready: Dict[str, bool] = {}  # tail -> serving (model loaded), as its metrics say
        self.clock_offset: Dict[str, float] = {}  # device -> our clock minus its clock, seconds (coarse)
        self.bad_messages = 0
        self._warned: Dict[str, str] = {}
        config = config.with_client_id(config.client_id or f"{topics.fleet}-{COORDINATOR_ID}")
        self.mqtt = MqttClient(config, state_topic=topics.state(COORDINATOR_ID))
        self._subs = [
            self.mqtt.subscribe(topic, qos=1, maxsize=10000, drop="newest")
            for topic in (topics.all_devices("info"), topics.all_devices("state"), topics.all_devices("assign"),
                          topics.policy())
        ]
        self._subs.append(self.mqtt.subscribe(topics.all_devices("metrics"), qos=0, maxsize=10000, drop="oldest"))
        self.changed = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.mqtt.connect(timeout=30.0)
        self.mqtt.publish(self.topics.policy(), _policy_json(self.policy), qos=1, retain=True)
        log.debug("coordinator of fleet %r on %s, epoch %.3f: model %s at %d, cut %s, codec %s; inventory: %s",
                 self.topics.fleet, self.mqtt.config.url, self.epoch, self.policy.model, self.policy.imgsz,
                 self.policy.cut, self.policy.codec, _inventory(self.policy))
        connects = self.mqtt.counters()["connects"]
        dirty_since: Optional[float] = time.monotonic()  # plan once retained state has arrived
        try:
            while not stop.is_set():
                if any([self._absorb(msg) for msg in self._drain(timeout=0.1)]):
                    dirty_since = dirty_since or time.monotonic()
                if self._expire_silent_tails():
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
        """Update the registry from one message; True if planning inputs changed. Never raises: whatever a
        device sends is at worst a bad message, counted and logged."""
        try:
            parsed = self.topics.parse(msg.topic)
        except SplitInferError:
            return False
        if parsed.kind != "policy" and parsed.device == COORDINATOR_ID:
            return False
        try:
            return self._absorb_kind(parsed.kind, parsed.device, msg)
        except SplitInferError as exc:
            self.bad_messages += 1
            log.warning("ignoring %s: %s", msg.topic, exc)
        except Exception:  # a bug in validation must not let one device stop the fleet's coordinator
            self.bad_messages += 1
            log.exception("ignoring %s: unexpected error", msg.topic)
        return False

    def _absorb_kind(self, kind: str, device: str, msg: Message) -> bool:
        payload = msg.payload
        if kind == "policy":
            policy = Policy.from_dict(parse_json(payload, "policy"))
            changed = policy != self.policy
            self.policy = policy
            if changed:
                log.info("policy changed: model %s, cut %s, codec %s; inventory: %s", policy.model, policy.cut,
                         policy.codec, _inventory(policy))
                self._apply_roles()
            return changed
        if kind == "assign":  # our own retained word, read back after a restart
            if payload and device not in self.assignments:
                self.assignments[device] = Assignment.from_json(payload)
            return False
        if kind == "info":
            return self._absorb_info(device, payload)
        if kind == "metrics":
            return self._absorb_metrics(device, msg)
        state = payload.decode("utf-8", "replace").strip()[:16]
        before = self.devices.get(device)
        if before is None:
            return False  # state before info: wait for the info to know the role
        online = state == "online"
        self.devices[device] = DeviceState(device, before.role, online)
        if online:
            self.last_metrics[device] = time.monotonic()  # give it stale_after to report
        if before.online != online:
            log.info("%s (%s) is %s", device, before.role, state)
            return True
        return False

    def _absorb_info(self, device: str, payload: bytes) -> bool:
        if not payload:
            return False
        info = DeviceInfo.from_json(payload)
        if info.id != device:
            raise ProtocolError(f"info on {device}'s topic names another device, {info.id!r}")
        role = self._role(device, info.role)
        if role is None:
            return False
        old = self.infos.get(device)
        self.infos[device] = info
        before = self.devices.get(device)
        online = before.online if before else True
        self.devices[device] = DeviceState(device, role, online and not info.failure)
        if info.failure and (old is None or old.failure != info.failure):
            log.warning("%s (%s) failed: %s", device, role, info.failure)
        return before != self.devices[device] or self._profile_moved(device, old, info)

    def _apply_roles(self) -> None:
        """After a policy change: every known device in the role the (new) inventory gives it, or dropped."""
        devices = {}
        for device, state in self.devices.items():
            info = self.infos.get(device)
            role = self._role(device, info.role if info else state.role)
            if role is not None:
                devices[device] = DeviceState(device, role, state.online)
        self.devices = devices

    def _role(self, device: str, claimed: str) -> Optional[str]:
        """The role the inventory gives ``device`` (None: not in it), or its own claim without an inventory."""
        roles = self.policy.roles
        if not roles:
            return claimed if claimed in ("head", "tail") else None
        role = roles.get(device)
        if role is None:
            self._warn_once(device, "unknown", f"{device} is not in the fleet inventory: ignored")
        elif claimed != role:
            self._warn_once(device, "role", f"{device} claims to be a {claimed}, the inventory says {role}")
        return role

    def _absorb_metrics(self, device: str, msg: Message) -> bool:
        data = parse_json(msg.payload, f"metrics of {device}")
        sent_at = data.get("time")
        if isinstance(sent_at, (int, float)) and not isinstance(sent_at, bool):
            offset = msg.received_wall - float(sent_at)
            self.clock_offset[device] = offset
            if abs(offset) > SKEW_WARN_S:
                self._warn_once(device, "clock", f"{device}'s clock is {-offset:+.0f} s off ours: its latencies are "
                                f"corrected only where a head can measure the offset (NTP fixes this)")
        if device not in self.devices:
            return False
        self.last_metrics[device] = time.monotonic()
        ready = data.get("ready")
        if isinstance(ready, bool) and self.ready.get(device) != ready:
            self.ready[device] = ready
            return self.devices[device].role == "tail"
        return False

    def _expire_silent_tails(self) -> bool:
        """Tails whose metrics stopped for ``stale_after`` seconds count as offline (a partition the broker has not
        noticed: its keepalive takes up to 1.5 × 30 s); True if one just went."""
        now = time.monotonic()
        expired = False
        for device, state in list(self.devices.items()):
            if state.role != "tail" or not state.online:
                continue
            if now - self.last_metrics.get(device, now) > self.stale_after:
                log.warning("%s has sent no metrics for %.0f s: treating it as offline", device, self.stale_after)
                self.devices[device] = DeviceState(device, state.role, False)
                expired = True
        return expired

    def _unready(self) -> List[str]:
        """Live tails that said they do not serve yet (model loading): no heads are routed to them until they do."""
        return [d for d, s in self.devices.items() if s.role == "tail" and self.ready.get(d) is False]

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
        new = plan(self.devices, self.policy, self.assignments, profiles, epoch=self.epoch, unready=self._unready())
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

    def _warn_once(self, device: str, kind: str, message: str) -> None:
        if self._warned.get(f"{device}/{kind}") != message:
            self._warned[f"{device}/{kind}"] = message
            log.warning("%s", message)


def _inventory(policy: Policy) -> str:
    if not policy.roles:
        return "none (devices' own roles are taken: give the coordinator fleet.yaml for a real fleet)"
    return ", ".join(f"{d}={r}" for d, r in sorted(policy.roles.items()))


def _policy_json(policy: Policy) -> bytes:
    return json.dumps(policy.to_dict()).encode()
