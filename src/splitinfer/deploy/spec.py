"""The container a device should run, as plain data shared by the planner and the engine wrapper."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["LABEL_DEVICE", "LABEL_FLEET", "LABEL_HASH", "LABEL_ROLE", "ContainerSpec"]

LABEL_FLEET = "splitinfer.fleet"
LABEL_ROLE = "splitinfer.role"
LABEL_DEVICE = "splitinfer.device"
LABEL_HASH = "splitinfer.config-hash"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that, when changed, requires the container to be recreated.

    ``gpus`` is ``None`` (no GPU request), ``-1`` (all) or a count; ``runtime`` is ``"nvidia"`` on Jetson.
    ``secret_env`` names env keys whose values are hidden when the spec is shown (still hashed).
    """

    name: str
    image: str
    command: Tuple[str, ...]
    env: Dict[str, str] = field(default_factory=dict)
    labels: Dict[str, str] = field(default_factory=dict)
    volumes: Tuple[str, ...] = ()
    devices: Tuple[str, ...] = ()
    runtime: Optional[str] = None
    gpus: Optional[int] = None
    network_mode: str = "host"
    restart_policy: str = "unless-stopped"
    init: bool = True
    secret_env: Tuple[str, ...] = ()

    def config_hash(self) -> str:
        """A stable digest of the spec (labels excluded: the hash itself becomes one)."""
        data = asdict(self)
        data.pop("labels")
        data.pop("secret_env")
        data["env"] = sorted(self.env.items())
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def device_requests(self) -> List[Dict[str, Any]]:
        """The GPU request, as ``docker.types.DeviceRequest`` keyword arguments (x86 servers with the NVIDIA
        Container Toolkit; a Jetson gets its GPU through ``runtime`` instead, where device requests fail)."""
        if self.gpus is None:
            return []
        return [{"count": self.gpus, "capabilities": [["gpu"]]}]

    def public_env(self) -> Dict[str, str]:
        return {k: ("***" if k in self.secret_env else v) for k, v in self.env.items()}

    def describe(self) -> Dict[str, object]:
        """JSON-friendly view for ``--dry-run``, secrets masked."""
        data = asdict(self)
        data["env"] = self.public_env()
        data["command"] = list(self.command)
        data["volumes"] = list(self.volumes)
        data["devices"] = list(self.devices)
        data["device_requests"] = self.device_requests()
        data.pop("secret_env")
        return data
