"""`splitctl down`'s logic against the in-memory engine: what deploy made goes (heads first, stopped before
removed), anything without this fleet's labels stays, an unreachable engine is reported and does not stop the
others, and the state file forgets what was removed."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest

from splitinfer.deploy import ContainerState, DeployState, teardown
from splitinfer.errors import DeployError, FleetConfigError
from splitinfer.fleet import Device, Fleet

from .test_deployer import FakeEngine, _fleet


def _container(cid: str, name: str, device: str, *, fleet: str = "f", running: bool = True) -> ContainerState:
    labels = {"splitinfer.fleet": fleet, "splitinfer.device": device} if fleet else {}
    return ContainerState(id=cid, name=name, status="running" if running else "exited", running=running,
                          exit_code=0, restart_count=0, image="i", image_id="sha256:img", labels=labels)


@pytest.fixture
def engines() -> Dict[str, FakeEngine]:
    cam = FakeEngine("cam-1", {c.id: c for c in (
        _container("a", "splitinfer-cam-1", "cam-1"),
        _container("b", "splitinfer-cam-1-previous", "cam-1", running=False))})
    gpu = FakeEngine("gpu-1", {c.id: c for c in (
        _container("c", "splitinfer-gpu-1", "gpu-1"),
        _container("d", "splitinfer-gpu-1-previous", "gpu-1", fleet=""))})  # not made by deploy
    return {"cam-1": cam, "gpu-1": gpu}


def test_down_removes_this_fleets_containers_heads_first(engines: Dict[str, FakeEngine], tmp_path: Path) -> None:
    order: List[str] = []
    state = DeployState(tmp_path / "fleet.state.json", {"devices": {"cam-1": {}, "gpu-1": {}, "other": {}}})
    results = teardown(_fleet(), connect=lambda d: engines[d.id], state=state,
                       on_event=lambda device, message: order.append(device))
    assert [(r.device, r.status, r.removed) for r in results] == [
        ("cam-1", "removed", ["splitinfer-cam-1", "splitinfer-cam-1-previous"]),
        ("gpu-1", "removed", ["splitinfer-gpu-1"]),
    ]
    assert order[0] == "cam-1" and order[-1] == "gpu-1"
    assert engines["cam-1"].calls == ["stop a", "remove a", "remove b"]  # stopped (says offline), then removed
    assert results[1].kept == ["splitinfer-gpu-1-previous"] and "not made by deploy" in results[1].message
    assert set(engines["gpu-1"].containers) == {"d"}
    assert set(state.data["devices"]) == {"other"}


def test_an_unreachable_engine_is_reported_and_the_others_still_go(engines: Dict[str, FakeEngine]) -> None:
    def connect(device: Device) -> FakeEngine:
        if device.id == "cam-1":
            raise DeployError("cannot reach the Docker engine at unix:///a: no such socket", device="cam-1")
        return engines[device.id]

    results = teardown(_fleet(), connect=connect)
    assert [(r.device, r.status, r.ok) for r in results] == [
        ("cam-1", "unreachable", False), ("gpu-1", "removed", True)]
    assert results[0].message == "cam-1: cannot reach the Docker engine at unix:///a: no such socket"


def test_only_and_nothing_there(engines: Dict[str, FakeEngine]) -> None:
    fleet: Fleet = _fleet()
    engines["gpu-1"].containers.clear()
    results = teardown(fleet, only=["gpu-1"], connect=lambda d: engines[d.id])
    assert [(r.device, r.status) for r in results] == [("gpu-1", "none")]
    assert len(engines["cam-1"].containers) == 2
    with pytest.raises(FleetConfigError, match="no device 'cam-9' in the fleet"):
        teardown(fleet, only=["cam-9"], connect=lambda d: engines[d.id])
