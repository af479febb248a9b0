"""Where the node runtime plugs into deploy and status.

- :class:`ReadinessProbe` — ``probe(device_id) -> bool``: has the node published ``devices/<id>/state = online``
  since deploy connected? Deploy waits for it after the start grace period.
- :class:`AssignmentSink` — ``apply_assignment(Assignment) -> str``: cut, bits and batch never recreate a
  container; they travel as the retained ``coordinator/policy``, which the coordinator turns into each device's
  retained ``devices/<id>/assign``. Deploy also writes them to the state file.
- :class:`RuntimeStatusSource` — ``device_status(device_id) -> RuntimeStatus | None``: the live MQTT view
  (state, cut in use, route, fps, latency, bytes per frame, drops, last seen) for ``splitctl status``.

:func:`.live.runtime_hooks` is the one place the CLI asks for them: MQTT-backed when the fleet's broker answers;
otherwise no readiness probe (a running container counts as healthy), assignments recorded as pending
(:class:`PendingAssignments`) and no MQTT columns, with ``note`` saying why. This module is plain types: it
imports nothing of the runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Union

__all__ = [
    "Assignment",
    "AssignmentSink",
    "PendingAssignments",
    "ReadinessProbe",
    "RuntimeHooks",
    "RuntimeStatus",
    "RuntimeStatusSource",
]

ReadinessProbe = Callable[[str], bool]
"""``probe(device_id)`` → True once the device's node reports online."""


@dataclass(frozen=True)
class Assignment:
    """What the coordinator will publish for one device (its route is the coordinator's call, not deploy's)."""

    device_id: str
    role: str
    cut: Optional[Union[int, str]]
    bits: int
    batch: int
    imgsz: Optional[int] = None
    model: Optional[str] = None
    sha256: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


class AssignmentSink(Protocol):
    def apply_assignment(self, assignment: Assignment) -> str:
        """Deliver the assignment; return a short status for the summary ("published", "pending: …")."""


@dataclass
class PendingAssignments:
    """The sink when the broker cannot be reached: records assignments (deploy also writes them to the state file)."""

    applied: List[Assignment] = field(default_factory=list)
    reason: str = "no broker"

    def apply_assignment(self, assignment: Assignment) -> str:
        self.applied.append(assignment)
        return f"pending ({self.reason})"


@dataclass(frozen=True)
class RuntimeStatus:
    """One device as its topics describe it. Every field is None when the device did not say, or said something
    that is not the right type (a device's messages are never trusted to be well formed)."""

    state: Optional[str] = None  # online, offline (its last will), failed
    cut: Optional[str] = None
    route: Optional[str] = None  # heads: their tail; tails: their heads, comma-separated
    fps: Optional[float] = None
    latency_ms: Optional[float] = None  # p50: head compute on heads, end to end on tails
    bytes_per_frame: Optional[int] = None
    dropped: Optional[int] = None
    drop_ratio: Optional[float] = None  # dropped / frames seen, when the metrics say both
    last_seen: Optional[float] = None  # wall clock of the last metrics received
    predicted_ms: Optional[float] = None  # heads: the coordinator's prediction for the assigned cut
    measured_ms: Optional[float] = None  # heads: end to end p50 as its tail measures it
    reason: Optional[str] = None  # heads: why the coordinator chose this cut
    mode: Optional[str] = None  # split, local or offload
    device: Optional[str] = None  # the torch device the node runs on (cpu, cuda:0)
    failure: Optional[str] = None  # why the node failed, when it says


class RuntimeStatusSource(Protocol):
    def device_status(self, device_id: str) -> Optional[RuntimeStatus]:
        """The device's live MQTT view, or None when it has not been seen."""


@dataclass
class RuntimeHooks:
    readiness: Optional[ReadinessProbe] = None
    assignments: AssignmentSink = field(default_factory=PendingAssignments)
    status: Optional[RuntimeStatusSource] = None
    note: str = ""  # why the MQTT side is missing, when it is
    close: Callable[[], None] = lambda: None
