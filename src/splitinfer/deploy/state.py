"""What the last deploy decided, kept next to the fleet file (``fleet.yaml`` → ``fleet.state.json``).

Until the coordinator publishes assignments, this file is where the desired cut/bits/batch per device live;
``splitctl status`` shows them from here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict

__all__ = ["DeployState", "state_path"]


def state_path(fleet_file: Path) -> Path:
    return fleet_file.with_name(f"{fleet_file.stem}.state.json")


class DeployState:
    def __init__(self, path: Path, data: Dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> DeployState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            data = {}
        if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
            data = {"devices": {}}
        return cls(path, data)

    def device(self, device_id: str) -> Dict[str, Any]:
        entry = self.data["devices"].get(device_id)
        return entry if isinstance(entry, dict) else {}

    def record(self, device_id: str, entry: Dict[str, Any]) -> None:
        self.data["devices"][device_id] = entry
        self.save()

    def forget(self, device_id: str) -> None:
        """Drop a device's entry (its container was removed)."""
        if self.data["devices"].pop(device_id, None) is not None:
            self.save()

    def save(self) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.resolve().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)
