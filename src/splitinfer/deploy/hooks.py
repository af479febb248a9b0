"""Where the node runtime plugs into deploy and status. Nothing here talks MQTT yet.

The runtime issue (coordinator + ``splitctl node``) fills these in; until then deploy and status work on the
Docker side alone and say so:

- :class:`ReadinessProbe` — ``probe(device_id) -> bool``: has the node published ``devices/<id>/state = online``?
  Deploy waits for it after the start grace period when one is given. Default: none (running = healthy).
- :class:`AssignmentSink` — ``apply_assignment(Assignment) -> str``: publish the retained
  ``devices/<id>/assign`` (cut, bits, batch, model). Cut/bits/batch never recreate a container: they travel
  here. Default: :class:`PendingAssignments`, which only records them (deploy also writes them to the state file).
- :class:`RuntimeStatusSource` — ``device_status(device_id) -> RuntimeStatus | None``: the live MQTT view
  (state, cut in use, route, fps, latency) for ``splitctl status``. Default: none (columns show "—").

:func:`runtime_hooks` is the one place the CLI asks for them.
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
    "runtime_hooks",
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
    """The stand-in sink: records assignments; nothing reaches the devices until the coordinator exists."""

    applied: List[Assignment] = field(default_factory=list)

    def apply_assignment(self, assignment: Assignment) -> str:
        self.applied.append(assignment)
        return "pending (no coordinator yet)"


@dataclass(frozen=True)
class RuntimeStatus:
    state: str = "—"
    cut: str = "—"
    route: str = "—"
    fps: Optional[float] = None
    latency_ms: Optional[float] = None


class RuntimeStatusSource(Protocol):
    def device_status(self, device_id: str) -> Optional[RuntimeStatus]:
        """The device's live MQTT view, or None when it has not been seen."""


@dataclass
class RuntimeHooks:
    readiness: Optional[ReadinessProbe] = None
    assignments: AssignmentSink = field(default_factory=PendingAssignments)
    status: Optional[RuntimeStatusSource] = None


def runtime_hooks(broker_url: str, fleet: str) -> RuntimeHooks:
    """The hooks the CLI uses for ``fleet`` on ``broker_url``. TODO(runtime): return MQTT-backed hooks here."""
    del broker_url, fleet
    return RuntimeHooks()
