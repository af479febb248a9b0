"""The fleet-level deploy: connect, plan, then roll out device by device with rollback.

Order: tails first, then heads (see :data:`.plan.ROLE_ORDER`). Per device:

1. make the image present on the engine (present → pull → build), and copy the fleet's model files into the
   device's model volume where their digest differs (:mod:`.models`);
2. compare the config hash label of ``splitinfer-<id>`` with the target: equal and running → nothing restarts;
3. otherwise rename the old container to ``splitinfer-<id>-previous`` and stop it (a camera or GPU cannot be
   shared), create and start the new one with restarts off, and wait until it is healthy: running for ``grace``
   seconds and, when a readiness probe is given, reported online within ``ready_timeout``; then switch its
   restart policy to ``unless-stopped``;
4. healthy → remove the previous container; not healthy → remove the new one, rename and restart the previous
   one, and stop the rollout with a DeployError carrying the new container's last log lines.

Cut, bits and batch are not part of the hash: they go to the :class:`~.hooks.AssignmentSink` and the state file.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from splitinfer.errors import DeployError

from .engine import ContainerState, Engine
from .hooks import AssignmentSink, PendingAssignments, ReadinessProbe
from .models import helper_spec, sync_models
from .plan import Action, Target, backup_name, decide
from .spec import LABEL_FLEET
from .state import DeployState

__all__ = ["DeployResult", "Deployer", "Step", "connect_device"]

EventSink = Callable[[str, str], None]
"""``on_event(device_id, message)``: progress for the CLI."""
Connector = Callable[[Target], Engine]


def connect_device(target: Target, *, timeout: float = 10.0) -> Engine:
    device = target.device
    return Engine.connect(device.docker, device=device.id, tls_dir=device.docker_tls, timeout=timeout)


@dataclass
class Step:
    """The planned action for one device; ``engine`` is None when it could not be reached."""

    target: Target
    action: Optional[Action]
    reason: str
    current: Optional[ContainerState] = None
    engine: Optional[Engine] = None
    error: Optional[DeployError] = None

    @property
    def device_id(self) -> str:
        return self.target.device.id

    def to_json(self) -> Dict[str, Any]:
        return {
            "device": self.device_id,
            "role": self.target.device.role,
            "action": self.action.value if self.action else "unreachable",
            "reason": self.reason,
            "container": self.target.spec.name,
            "config_hash": self.target.config_hash,
            "current_hash": (self.current.labels.get("splitinfer.config-hash") if self.current else None),
            "assignment": self.target.assignment.to_json(),
            "spec": self.target.spec.describe(),
            "models": [f.to_json() for f in self.target.models],
        }


@dataclass
class DeployResult:
    device: str
    role: str
    status: str
    """kept, created, recreated, started, failed, skipped"""
    message: str = ""
    container_id: str = ""
    config_hash: str = ""
    image: str = ""
    assignment: Dict[str, Any] = field(default_factory=dict)
    assignment_status: str = ""
    logs: str = ""
    seconds: float = 0.0
    models_copied: List[str] = field(default_factory=list)
    """Model files copied into the device's model volume (the others were there with the same digest)."""

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "skipped")

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


class Deployer:
    def __init__(
        self,
        *,
        connect: Connector = connect_device,
        readiness: Optional[ReadinessProbe] = None,
        assignments: Optional[AssignmentSink] = None,
        state: Optional[DeployState] = None,
        grace: float = 5.0,
        ready_timeout: float = 60.0,
        stop_timeout: int = 10,
        on_event: Optional[EventSink] = None,
    ) -> None:
        self._connect = connect
        self._readiness = readiness
        self._assignments = assignments if assignments is not None else PendingAssignments()
        self._state = state
        self._grace = grace
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._on_event = on_event or (lambda device, message: None)

    # -- plan ------------------------------------------------------------------------------------------------

    def plan(self, targets: Sequence[Target]) -> List[Step]:
        """Reach every engine concurrently and decide each device's action. Changes nothing."""
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(targets)))) as pool:
            return list(pool.map(self._plan_one, targets))

    def _plan_one(self, target: Target) -> Step:
        self._on_event(target.device.id, "connecting")
        try:
            engine = self._connect(target)
        except DeployError as exc:
            return Step(target, None, str(exc), error=exc)
        try:
            current = engine.container(target.spec.name)
            image_id = engine.image_id(target.spec.image)
        except DeployError as exc:
            engine.close()
            return Step(target, None, str(exc), error=exc)
        action, reason = decide(target, current, image_id=image_id)
        if image_id is None:
            reason += f"; image {target.spec.image} not on the engine yet"
        self._on_event(target.device.id, f"planned: {action.value}")
        return Step(target, action, reason, current=current, engine=engine)

    # -- apply -----------------------------------------------------------------------------------------------

    def apply(self, steps: Sequence[Step]) -> List[DeployResult]:
        """Roll out in the steps' order; stop at the first failure (the rest are reported as skipped).

        Nothing is touched unless every engine in the plan answered.
        """
        unreachable = [s for s in steps if s.engine is None]
        if unreachable:
            self.close(steps)
            first = unreachable[0].error or DeployError(unreachable[0].reason, device=unreachable[0].device_id)
            names = ", ".join(s.device_id for s in unreachable)
            raise DeployError(f"{first}; nothing was deployed ({len(unreachable)} unreachable: {names})") from first
        results: List[DeployResult] = []
        failed = False
        try:
            for step in steps:
                if failed:
                    results.append(_result(step, "skipped", "not attempted: an earlier device failed"))
                    continue
                result = self._apply_one(step)
                results.append(result)
                failed = not result.ok
        finally:
            self.close(steps)
        return results

    def close(self, steps: Sequence[Step]) -> None:
        for step in steps:
            if step.engine is not None:
                step.engine.close()

    def _apply_one(self, step: Step) -> DeployResult:
        assert step.engine is not None
        engine, target, device = step.engine, step.target, step.device_id
        started = time.monotonic()
        try:
            self._on_event(device, f"image {target.spec.image}")
            image_id, how = engine.ensure_image(target.spec.image, build=target.build)
            if how != "present":
                self._on_event(device, f"image {how}")
            copied = self._sync_models(engine, target)
            current = engine.container(target.spec.name) or self._recover_previous(engine, target)
            action, reason = decide(target, current, image_id=image_id)
            container_id, status = self._converge(engine, target, action, current)
        except DeployError as exc:
            self._on_event(device, "failed")
            result = _result(step, "failed", str(exc), logs=exc.logs)
            result.seconds = round(time.monotonic() - started, 2)
            return result
        self._on_event(device, "assigning")
        assignment_status = self._assignments.apply_assignment(target.assignment)
        result = _result(step, status, reason, container_id=container_id, assignment_status=assignment_status,
                         models_copied=copied)
        result.seconds = round(time.monotonic() - started, 2)
        self._record(target, result)
        self._on_event(device, status)
        return result

    def _converge(
        self, engine: Engine, target: Target, action: Action, current: Optional[ContainerState]
    ) -> Tuple[str, str]:
        if action is Action.KEEP:
            assert current is not None
            return current.id, "kept"
        if action is Action.START:
            assert current is not None
            self._on_event(target.device.id, "starting")
            engine.start(current.id)
            self._wait_healthy(engine, current.id, target.device.id)
            return current.id, "started"
        return self._replace(engine, target, current), "created" if action is Action.CREATE else "recreated"

    def _sync_models(self, engine: Engine, target: Target) -> List[str]:
        if not target.models:
            return []
        device = target.device.id
        self._on_event(device, "checking the model volume")
        fleet = target.spec.labels.get(LABEL_FLEET, "")
        copied = sync_models(engine, helper_spec(fleet, device, target.spec.image), target.models)
        self._on_event(device, f"copied {', '.join(copied)}" if copied else "model files up to date")
        return copied

    def _recover_previous(self, engine: Engine, target: Target) -> Optional[ContainerState]:
        """A deploy interrupted mid-replacement leaves only ``-previous``: give it its name back first."""
        previous = engine.container(backup_name(target.device.id))
        if previous is None:
            return None
        self._on_event(target.device.id, "restoring the container left by an interrupted deploy")
        engine.rename(previous.id, target.spec.name)
        return engine.container(previous.id)

    def _replace(self, engine: Engine, target: Target, previous: Optional[ContainerState]) -> str:
        device = target.device.id
        if previous is not None:
            self._on_event(device, "stopping the previous container")
            engine.remove(backup_name(device))  # a leftover from an interrupted deploy
            engine.rename(previous.id, backup_name(device))
            engine.stop(previous.id, timeout=self._stop_timeout)
        new_id = ""
        try:
            self._on_event(device, "creating")
            # No restarts while on probation: a crash shows as "exited" with its status, not as a restart loop.
            new_id = engine.create(target.spec, restart_policy="no")
            engine.start(new_id)
            self._wait_healthy(engine, new_id, device)
            engine.set_restart_policy(new_id, target.spec.restart_policy)
        except DeployError as exc:
            logs = engine.last_lines(new_id) if new_id else ""
            note = self._rollback(engine, target, previous, new_id)
            raise DeployError(f"{_strip_device(exc, device)}; {note}", device=device, logs=logs) from exc
        if previous is not None:
            engine.remove(previous.id)
        return new_id

    def _rollback(self, engine: Engine, target: Target, previous: Optional[ContainerState], new_id: str) -> str:
        device = target.device.id
        self._on_event(device, "rolling back")
        try:
            if new_id:
                engine.remove(new_id)
            if previous is None:
                return "no previous container to restore"
            engine.rename(previous.id, target.spec.name)
            if previous.running:
                engine.start(previous.id)
                return f"rolled back to the previous container {previous.id[:12]}"
            return f"restored the previous container {previous.id[:12]} (it was {previous.status})"
        except DeployError as exc:
            return f"ROLLBACK FAILED ({_strip_device(exc, device)}); inspect with `docker ps -a` on the device"

    def _wait_healthy(self, engine: Engine, container: str, device: str) -> None:
        self._on_event(device, f"waiting {self._grace:g}s for a steady start")
        deadline = time.monotonic() + self._grace
        while True:
            state = engine.container(container)
            if state is None:
                raise DeployError("the new container disappeared", device=device)
            if not state.running or state.status == "restarting" or state.restart_count > 0:
                code = f" with status {state.exit_code}" if state.exit_code or not state.running else ""
                raise DeployError(f"the new container exited{code} right after starting", device=device)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if self._readiness is None:
            return
        self._on_event(device, "waiting for the node to report online")
        deadline = time.monotonic() + self._ready_timeout
        while not self._readiness(device):
            if time.monotonic() >= deadline:
                raise DeployError(f"the node did not report online within {self._ready_timeout:g}s", device=device)
            time.sleep(0.5)

    def _record(self, target: Target, result: DeployResult) -> None:
        if self._state is None:
            return
        self._state.record(
            target.device.id,
            {
                "role": target.device.role,
                "container_id": result.container_id,
                "config_hash": target.config_hash,
                "image": target.spec.image,
                "assignment": target.assignment.to_json(),
                "assignment_status": result.assignment_status,
                "deployed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )


def _result(step: Step, status: str, message: str, **extra: Any) -> DeployResult:
    target = step.target
    return DeployResult(
        device=step.device_id,
        role=target.device.role,
        status=status,
        message=message,
        config_hash=target.config_hash,
        image=target.spec.image,
        assignment=target.assignment.to_json(),
        **extra,
    )


def _strip_device(exc: DeployError, device: str) -> str:
    text = str(exc)
    return text[len(device) + 2 :] if text.startswith(f"{device}: ") else text
