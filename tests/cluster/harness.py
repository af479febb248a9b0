"""A fleet on this machine for the runtime tests: real node processes (``python -m splitinfer node …``) on a
real broker, and an operator client that reads detections and metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.topics import Topics
from splitinfer.cluster.processes import Processes, node_command
from splitinfer.node.models import as_assigned


class Observer:
    """What a test watches of a fleet through one operator client: detections, metrics and states, with the
    processes' logs in every failure message. While it waits it checks that no process has died, unless a
    subclass expects some to (``watch_processes = False``)."""

    watch_processes = True

    def __init__(self, operator: MqttClient, topics: Topics, procs: Processes) -> None:
        self.operator, self.topics, self.procs = operator, topics, procs
        self.detections = operator.subscribe(topics.all_detections(), maxsize=100_000, drop="newest")
        self.metrics_sub = operator.subscribe(topics.all_devices("metrics"), maxsize=100_000)
        self.state_sub = operator.subscribe(topics.all_devices("state"), qos=1, maxsize=100_000)
        self.states: Dict[str, str] = {}

    def wait_state(self, device_id: str, state: str = "online", timeout: float = 120.0) -> float:
        """Until ``device_id`` says ``state``; the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while self.states.get(device_id) != state:
            assert time.monotonic() < deadline, f"{device_id} not {state} after {timeout} s\n{self.log_tails()}"
            msg = self.state_sub.get(timeout=0.2)
            if msg is not None:
                self.states[self.topics.parse(msg.topic).device] = msg.payload.decode()
            self.check_alive()
        return time.monotonic()

    def wait_online(self, device_id: str, timeout: float = 120.0) -> None:
        self.wait_state(device_id, "online", timeout)

    def wait_detections(self, n: int, timeout: float, where: Optional[Callable[[dict], bool]] = None) -> List[dict]:
        """At least ``n`` detection records (matching ``where``), or AssertionError with the logs' tails."""
        out: List[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            msg = self.detections.get(timeout=0.2)
            if msg is not None:
                record = json.loads(msg.payload)
                if where is None or where(record):
                    out.append(record)
            self.check_alive()
        assert len(out) >= n, f"only {len(out)} of {n} detections in {timeout} s\n{self.log_tails()}"
        return out

    def metrics(self, device_id: str, timeout: float = 30.0, where: Callable[[dict], bool] = lambda m: True) -> dict:
        """The first metrics report of ``device_id`` (from now on) for which ``where`` holds."""
        topic = self.topics.metrics(device_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.metrics_sub.get(timeout=0.2)
            if msg is not None and msg.topic == topic:
                data = json.loads(msg.payload)
                if where(data):
                    return data
        raise AssertionError(f"no matching metrics from {device_id} in {timeout} s\n{self.log_tails()}")

    def check_alive(self, *names: str) -> None:
        from splitinfer.errors import ProcessError

        if not self.watch_processes and not names:
            return
        try:
            self.procs.check(names or None, allowed=(0, -9))
        except ProcessError as exc:
            raise AssertionError(f"{exc}\n{self.log_tails()}") from None

    def log_tails(self, lines: int = 15) -> str:
        return self.procs.tails(lines)


class Cluster(Observer):
    """Nodes on an anonymous local broker (``run --local``'s setting)."""

    def __init__(self, url: str, logs: Path, fleet: str = "test") -> None:
        super().__init__(MqttClient(BrokerConfig.from_url(url, client_id=f"{fleet}-operator-test")), Topics(fleet),
                         Processes(logs))
        self.url = url
        self.logs = logs
        self.tails: List[str] = []
        self.model_dir = ""
        self.operator.connect(timeout=10)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        return self.procs.start(name, node_command(*args, "--broker", self.url, "--fleet", self.topics.fleet))

    def coordinator(self, model: str, *args: str) -> subprocess.Popen:
        """A model file is assigned as deployments do: by name, pinned by sha256, in the nodes' model folder."""
        self.model_dir, name, digest = as_assigned(model)
        return self.start("coordinator", "coordinator", "--model", name, "--sha256", digest, *args)

    def tail(self, device_id: str, *args: str) -> subprocess.Popen:
        self.tails.append(device_id)
        return self.start(device_id, "node", "tail", "--id", device_id, "--model-dir", self.model_dir, *args)

    def head(self, device_id: str, source: str, *args: str) -> subprocess.Popen:
        """Start a head once every tail started so far is online, as an operator would: a head that comes up
        with no live tail gets no route and drops its first frames."""
        for tail in self.tails:
            self.wait_online(tail)
        return self.start(device_id, "node", "head", "--id", device_id, "--source", source, "--model-dir",
                          self.model_dir, *args)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def close(self) -> None:
        self.procs.stop()
        self.operator.close(timeout=0.5)
