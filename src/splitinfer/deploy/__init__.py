"""Provisioning containers through the Docker SDK, in two layers.

- :mod:`.engine` — a thin wrapper over one Docker engine (calls in, plain data out, DeployError on failure);
- :mod:`.plan` and :mod:`.deployer` — the fleet logic: container specs and their config hash, rolling order,
  idempotence, health wait and rollback;
- :mod:`.hooks` (plain types) and :mod:`.live` (over MQTT) — where the node runtime plugs in;
- :mod:`.teardown` — ``splitctl down``: remove what deploy created;
- :mod:`.image` — a node image for a machine with no registry (``splitctl image build``).

Importing this package does not import ``docker``.
"""

from __future__ import annotations

from .deployer import Deployer, DeployResult, Step, connect_device
from .engine import ContainerState, Engine, EngineInfo, iter_lines
from .hooks import (
    Assignment,
    AssignmentSink,
    PendingAssignments,
    ReadinessProbe,
    RuntimeHooks,
    RuntimeStatus,
    RuntimeStatusSource,
)
from .image import HostPython, build_node_image, host_python
from .live import runtime_hooks
from .plan import Action, Target, backup_name, container_name, container_spec, decide, node_command, plan_targets
from .spec import ContainerSpec
from .state import DeployState, state_path
from .teardown import Removal, teardown

__all__ = [
    "Action",
    "Assignment",
    "AssignmentSink",
    "ContainerSpec",
    "ContainerState",
    "DeployResult",
    "DeployState",
    "Deployer",
    "Engine",
    "EngineInfo",
    "HostPython",
    "PendingAssignments",
    "ReadinessProbe",
    "Removal",
    "RuntimeHooks",
    "RuntimeStatus",
    "RuntimeStatusSource",
    "Step",
    "Target",
    "backup_name",
    "build_node_image",
    "connect_device",
    "container_name",
    "container_spec",
    "decide",
    "host_python",
    "iter_lines",
    "node_command",
    "plan_targets",
    "runtime_hooks",
    "state_path",
    "teardown",
]
