"""The rollout logic against an in-memory engine: idempotence, order, rollback, unreachable engines."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from splitinfer.deploy import ContainerSpec, ContainerState, Deployer, PendingAssignments, Target, plan_targets
from splitinfer.errors import DeployError
from splitinfer.fleet import Fleet

_ids = itertools.count(1)


@dataclass
class FakeEngine:
    """Containers by name; a container whose command contains "crash" exits 1 right after start."""

    device: str
    containers: Dict[str, ContainerState] = field(default_factory=dict)
    calls: List[str] = field(default_factory=list)
    volume: Dict[str, bytes] = field(default_factory=dict)
    """The model volume's files by path (one volume: the fake engine holds one fleet)."""
    corrupt: bool = False
    """Copies land with one byte flipped."""

    def put_files(self, cid: str, files: Dict[str, Tuple[object, int]]) -> None:
        for path, (content, _) in files.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            assert isinstance(data, bytes)
            self.volume[path] = bytes([data[0] ^ 1]) + data[1:] if self.corrupt and data else data
            self.calls.append(f"put {path}")

    def read_file(self, cid: str, path: str) -> Optional[bytes]:
        return self.volume.get(path)

    def file_sha256(self, cid: str, path: str) -> Optional[str]:
        return hashlib.sha256(self.volume[path]).hexdigest() if path in self.volume else None

    def container(self, name_or_id: str) -> Optional[ContainerState]:
        for state in self.containers.values():
            if name_or_id in (state.name, state.id):
                return state
        return None

    def image_id(self, name: str) -> Optional[str]:
        return "sha256:img"

    def ensure_image(self, name: str, *, build: object = None) -> Tuple[str, str]:
        return "sha256:img", "present"

    def create(self, spec: ContainerSpec, *, name: Optional[str] = None, restart_policy: Optional[str] = None) -> str:
        cid = f"c{next(_ids)}"
        self.containers[cid] = ContainerState(
            id=cid,
            name=spec.name,
            status="created",
            running=False,
            exit_code=0,
            restart_count=0,
            image=spec.image,
            image_id="sha256:img",
            labels=dict(spec.labels),
            started_at=" ".join(spec.command),
        )
        self.calls.append(f"create {spec.name}")
        return cid

    def _set(self, cid: str, **changes: object) -> None:
        self.containers[cid] = replace(self.containers[cid], **changes)  # type: ignore[arg-type]

    def start(self, cid: str) -> None:
        self.calls.append(f"start {cid}")
        crash = "crash" in self.containers[cid].started_at
        self._set(cid, status="exited" if crash else "running", running=not crash, exit_code=1 if crash else 0)

    def set_restart_policy(self, cid: str, policy: str) -> None:
        self.calls.append(f"restart-policy {cid} {policy}")

    def stop(self, cid: str, *, timeout: int = 10) -> None:
        self.calls.append(f"stop {cid}")
        self._set(cid, status="exited", running=False)

    def rename(self, cid: str, name: str) -> None:
        self.calls.append(f"rename {cid} {name}")
        self._set(cid, name=name)

    def remove(self, name_or_id: str) -> None:
        state = self.container(name_or_id)
        if state:
            self.calls.append(f"remove {state.id}")
            del self.containers[state.id]

    def last_lines(self, cid: str, count: int = 20) -> str:
        return "Traceback: boom"

    def close(self) -> None:
        pass


def _fleet(command: Optional[List[str]] = None) -> Fleet:
    return Fleet.model_validate(
        {
            "fleet": "f",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "devices": [
                {
                    "id": "cam-1",
                    "role": "head",
                    "docker": "unix:///a",
                    "source": "0",
                    **({"command": command} if command else {}),
                },
                {"id": "gpu-1", "role": "tail", "docker": "unix:///b"},
            ],
        }
    )


class Fleetside:
    def __init__(self) -> None:
        self.engines: Dict[str, FakeEngine] = {}
        self.down: set = set()
        self.order: List[str] = []

    def connect(self, target: Target) -> FakeEngine:
        device = target.device.id
        if device in self.down:
            raise DeployError("cannot reach the Docker engine at unix:///b: no such socket", device=device)
        return self.engines.setdefault(device, FakeEngine(device))

    def deployer(self, **kwargs: object) -> Deployer:
        return Deployer(connect=self.connect, grace=0, on_event=lambda d, m: self.order.append(f"{d}:{m}"), **kwargs)  # type: ignore[arg-type]


def _deploy(side: Fleetside, fleet: Fleet, **kwargs: object) -> list:
    deployer = side.deployer(**kwargs)
    return deployer.apply(deployer.plan(plan_targets(fleet)))


def test_first_deploy_creates_tails_first_then_second_keeps_everything() -> None:
    side = Fleetside()
    results = _deploy(side, _fleet())
    assert [(r.device, r.status) for r in results] == [("gpu-1", "created"), ("cam-1", "created")]
    creates = [e for e in side.order if e.endswith(":creating")]
    assert creates == ["gpu-1:creating", "cam-1:creating"]
    ids = {d: e.container(f"splitinfer-{d}").id for d, e in side.engines.items()}  # type: ignore[union-attr]

    sink = PendingAssignments()
    again = _deploy(side, _fleet(), assignments=sink)
    assert [r.status for r in again] == ["kept", "kept"]
    assert {d: e.container(f"splitinfer-{d}").id for d, e in side.engines.items()} == ids  # type: ignore[union-attr]
    assert [a.device_id for a in sink.applied] == ["gpu-1", "cam-1"]
    assert again[1].assignment_status == "pending (no broker)"


def test_config_change_replaces_and_removes_previous() -> None:
    side = Fleetside()
    _deploy(side, _fleet())
    old = side.engines["cam-1"].container("splitinfer-cam-1")
    results = _deploy(side, _fleet(command=["sleep", "1000"]))
    assert [r.status for r in results] == ["kept", "recreated"]
    engine = side.engines["cam-1"]
    new = engine.container("splitinfer-cam-1")
    assert new is not None and old is not None and new.id != old.id and new.running
    assert list(engine.containers) == [new.id]  # the previous one is gone
    assert engine.calls[-6:] == [
        f"rename {old.id} splitinfer-cam-1-previous",
        f"stop {old.id}",
        "create splitinfer-cam-1",
        f"start {new.id}",
        f"restart-policy {new.id} unless-stopped",
        f"remove {old.id}",
    ]


def test_crashing_container_is_rolled_back_and_reported() -> None:
    side = Fleetside()
    _deploy(side, _fleet())
    old = side.engines["cam-1"].container("splitinfer-cam-1")
    assert old is not None
    results = _deploy(side, _fleet(command=["crash"]))
    failed = results[1]
    assert failed.status == "failed" and not failed.ok
    assert failed.message == (
        f"cam-1: the new container exited with status 1 right after starting; "
        f"rolled back to the previous container {old.id[:12]}"
    )
    assert failed.logs == "Traceback: boom"
    restored = side.engines["cam-1"].container("splitinfer-cam-1")
    assert restored is not None and restored.id == old.id and restored.running
    assert len(side.engines["cam-1"].containers) == 1


def test_failure_stops_the_rollout() -> None:
    side = Fleetside()
    fleet = Fleet.model_validate(
        {
            "fleet": "f",
            "broker": {"url": "mqtt://h:1883"},
            "devices": [
                {"id": "gpu-1", "role": "tail", "docker": "unix:///b", "command": ["crash"]},
                {"id": "cam-1", "role": "head", "docker": "unix:///a", "source": "0"},
            ],
        }
    )
    results = _deploy(side, fleet)
    assert [(r.device, r.status) for r in results] == [("gpu-1", "failed"), ("cam-1", "skipped")]
    assert results[0].message.endswith("no previous container to restore")
    assert side.engines["gpu-1"].containers == {} and side.engines["cam-1"].containers == {}


def test_unreachable_engine_deploys_nothing() -> None:
    side = Fleetside()
    side.down.add("gpu-1")
    with pytest.raises(DeployError, match=r"gpu-1: cannot reach .*; nothing was deployed \(1 unreachable: gpu-1\)"):
        _deploy(side, _fleet())
    assert side.engines["cam-1"].containers == {}


def test_readiness_probe_gates_health() -> None:
    side = Fleetside()
    seen: List[str] = []
    _deploy(side, _fleet(), readiness=lambda device: seen.append(device) or True)
    assert seen == ["gpu-1", "cam-1"]
    results = _deploy(Fleetside(), _fleet(), readiness=lambda device: False, ready_timeout=0.01)
    assert results[0].status == "failed"
    assert "did not report online within 0.01s; no previous container to restore" in results[0].message


def test_interrupted_deploy_leftover_is_restored_not_orphaned() -> None:
    side = Fleetside()
    _deploy(side, _fleet())
    engine = side.engines["cam-1"]
    old = engine.container("splitinfer-cam-1")
    assert old is not None
    engine.rename(old.id, "splitinfer-cam-1-previous")  # as if the operator's machine died mid-replacement
    engine.stop(old.id)
    results = _deploy(side, _fleet())
    assert results[1].status == "started" and results[1].container_id == old.id
    assert [s.name for s in engine.containers.values()] == ["splitinfer-cam-1"]


def _with_model(folder: Path, weights: bytes) -> Fleet:
    (folder / "best.pt").write_bytes(weights)
    data = _fleet().model_dump()
    data["model"] = {"path": str(folder / "best.pt"), "sha256": hashlib.sha256(weights).hexdigest()}
    return Fleet.model_validate(data)


def test_the_model_is_copied_only_when_its_digest_differs(tmp_path: Path) -> None:
    side = Fleetside()
    first = _deploy(side, _with_model(tmp_path, b"weights v1"))
    assert [r.models_copied for r in first] == [["best.pt"], ["best.pt"]]
    engine = side.engines["cam-1"]
    digest = hashlib.sha256(b"weights v1").hexdigest()
    assert engine.volume == {"/models/best.pt": b"weights v1", "/models/best.pt.sha256": f"{digest}\n".encode()}
    assert engine.calls[:3] == ["create splitinfer-cam-1-models", "put /models/best.pt.sha256", "put /models/best.pt"]
    assert [s.name for s in engine.containers.values()] == ["splitinfer-cam-1"]  # the helper is gone

    again = _deploy(side, _with_model(tmp_path, b"weights v1"))
    assert [(r.status, r.models_copied) for r in again] == [("kept", []), ("kept", [])]
    changed = _deploy(side, _with_model(tmp_path, b"weights v2"))
    assert [(r.status, r.models_copied) for r in changed] == [("kept", ["best.pt"]), ("kept", ["best.pt"])]
    assert engine.volume["/models/best.pt"] == b"weights v2"


def test_a_copy_that_reads_back_wrong_is_not_marked_and_stops_the_rollout(tmp_path: Path) -> None:
    side = Fleetside()
    side.engines["gpu-1"] = FakeEngine("gpu-1", corrupt=True)
    results = _deploy(side, _with_model(tmp_path, b"weights"))
    assert [r.status for r in results] == ["failed", "skipped"]
    assert "best.pt reached the model volume with sha256" in results[0].message
    assert side.engines["gpu-1"].volume["/models/best.pt.sha256"] == b""  # copied again next time
    assert side.engines["gpu-1"].containers == {}


def test_a_stranger_named_like_the_copy_helper_is_left_alone(tmp_path: Path) -> None:
    side = Fleetside()
    engine = side.engines.setdefault("gpu-1", FakeEngine("gpu-1"))
    engine.create(ContainerSpec(name="splitinfer-gpu-1-models", image="x", command=("sleep",)))  # not ours
    results = _deploy(side, _with_model(tmp_path, b"weights"))
    assert results[0].status == "failed" and "is in the way of the model copy and is not ours" in results[0].message
    assert [s.name for s in engine.containers.values()] == ["splitinfer-gpu-1-models"]
