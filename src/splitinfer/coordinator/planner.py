"""Cut and route assignment: pure logic, no MQTT.

Given the devices the coordinator knows (role, online or not), the fleet policy (model, default cut and codec,
per-device overrides) and the previous assignments, :func:`plan` returns the assignments every device should
have now. Routes are stable: a head stays on its tail while that tail is live and not over its fair share;
the others go to the least-loaded live tail. A device's generation grows only when its assignment changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional

from splitinfer.protocol import Assignment

__all__ = ["DeviceState", "Override", "Policy", "plan"]


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

    def to_dict(self) -> Dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        overrides = {k: Override(**v) for k, v in dict(data.get("overrides") or {}).items()}
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "overrides"}
        return cls(overrides=overrides, **fields)


@dataclass(frozen=True)
class DeviceState:
    id: str
    role: str
    online: bool


def plan(
    devices: Mapping[str, DeviceState], policy: Policy, previous: Mapping[str, Assignment]
) -> Dict[str, Assignment]:
    """Assignments for every known head and tail (offline heads keep theirs; offline tails get none)."""
    tails = sorted(d.id for d in devices.values() if d.role == "tail" and d.online)
    heads = sorted(d.id for d in devices.values() if d.role == "head" and d.online)
    routes = _routes(heads, tails, {h: previous[h].route for h in heads if h in previous})
    wanted: Dict[str, Assignment] = {}
    for head in heads:
        o = policy.overrides.get(head, Override())
        wanted[head] = Assignment(
            generation=0, model=policy.model, sha256=policy.sha256, imgsz=policy.imgsz, cut=o.cut or policy.cut,
            codec={**policy.codec, **o.codec}, route=routes.get(head, ""), batch=o.batch or policy.batch,
        )
    for tail in tails:
        wanted[tail] = Assignment(
            generation=0, model=policy.model, sha256=policy.sha256, imgsz=policy.imgsz, cut="", batch=policy.tail_batch,
            max_wait_ms=policy.max_wait_ms, heads=sorted(h for h, t in routes.items() if t == tail),
        )
    result = {}
    for device, assignment in wanted.items():
        before = previous.get(device)
        if before is not None and replace(before, generation=0) == assignment:
            result[device] = before
        else:
            result[device] = replace(assignment, generation=(before.generation + 1) if before else 1)
    for device, before in previous.items():  # offline heads keep their last word; it is retained anyway
        if device not in result and device in devices and devices[device].role == "head":
            result[device] = before
    return result


def _routes(heads: List[str], tails: List[str], current: Mapping[str, str]) -> Dict[str, str]:
    if not tails:
        return {}
    fair = math.ceil(len(heads) / len(tails))
    load = dict.fromkeys(tails, 0)
    routes: Dict[str, str] = {}
    for head in heads:  # keep live routes up to each tail's fair share
        tail = current.get(head)
        if tail in load and load[tail] < fair:
            routes[head] = tail
            load[tail] += 1
    for head in heads:
        if head not in routes:
            tail = min(tails, key=lambda t: (load[t], t))
            routes[head] = tail
            load[tail] += 1
    return routes
