"""A fleet the way an operator runs one, on this machine: Mosquitto with the rendered config (two listeners,
per-device users, the ACL, persistence), the coordinator from fleet.yaml, and nodes logging in with their own
derived credentials. Attackers are MQTT clients holding one device's credentials."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, free_port, run_mosquitto
from splitinfer.broker.mosquitto_conf import render_mosquitto_files
from splitinfer.broker.topics import Topics
from splitinfer.cluster.processes import Processes, node_command
from splitinfer.fleet.credentials import derive_password

from .harness import Observer

SECRET = "Tr0ub4dor&3-horse-battery-staple"
FLEET = "secure"
MODEL = "yolov8n.yaml"
IMGSZ = 128


class SecureFleet(Observer):
    watch_processes = False  # the hostile tests kill and fail nodes on purpose
    def __init__(self, root: Path, devices: Dict[str, str], *, imgsz: int = IMGSZ) -> None:
        self.root, self.devices = root, dict(devices)
        self.port = free_port()
        self.operator_port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.operator_url = f"mqtt://127.0.0.1:{self.operator_port}"
        self.fleet_file = root / "fleet.yaml"
        self.fleet_file.write_text(json.dumps({
            "fleet": FLEET,
            "broker": {"url": self.url, "operator_url": self.operator_url, "password_env": "FLEET_SECRET"},
            "model": {"path": MODEL, "imgsz": imgsz},
            "defaults": {"cut": "b", "bits": 4},
            "devices": [{"id": d, "role": r, "docker": "unix:///nonexistent.sock",
                         **({"source": "synthetic"} if r == "head" else {})} for d, r in devices.items()],
        }))
        self.broker: Optional[LocalBroker] = None
        self.start_broker()
        self.clients: List[MqttClient] = []
        super().__init__(self.client("coordinator", operator=True, client_id=f"{FLEET}-test-operator"),
                         Topics(FLEET), Processes(root / "logs"))
        self.operator.connect(timeout=10)

    # ---- the broker ---------------------------------------------------------------------------------------

    def start_broker(self) -> None:
        passwords = {u: derive_password(SECRET, FLEET, u) for u in [*self.devices, "coordinator"]}
        files = render_mosquitto_files(FLEET, list(self.devices.items()), passwords, port=self.port,
                                       operator_port=self.operator_port, bind_address="127.0.0.1",
                                       config_dir=str(self.root / "broker"), data_dir=str(self.root / "data"),
                                       run_as_user="root", hasher="python")
        (self.root / "data").mkdir(exist_ok=True)
        files.write(str(self.root / "broker"))
        self.broker = run_mosquitto(str(self.root / "broker" / "mosquitto.conf"), self.port)

    # ---- clients and processes --------------------------------------------------------------------------------

    def credentials(self, user: str) -> Dict[str, str]:
        return {"SPLITINFER_MQTT_USERNAME": user, "SPLITINFER_MQTT_PASSWORD": derive_password(SECRET, FLEET, user)}

    def client(self, user: str, *, operator: bool = False, client_id: str = "", connect: bool = False) -> MqttClient:
        """An MQTT client logged in as ``user`` (an attacker holding that device's credentials, or the operator)."""
        config = BrokerConfig.from_url(self.operator_url if operator else self.url, username=user,
                                       password=derive_password(SECRET, FLEET, user), client_id=client_id)
        client = MqttClient(config)
        self.clients.append(client)
        if connect:
            client.connect(timeout=10)
        return client

    def attacker(self, user: str = "cam-2") -> MqttClient:
        """A connected client holding ``user``'s credentials; the previous attacker is closed first (clients with
        the same username share one client id, and would take the session from each other)."""
        for client in self.clients:
            if client.config.username == user:
                client.close(timeout=0.3)
        return self.client(user, connect=True)

    def coordinator(self) -> subprocess.Popen:
        return self.procs.start("coordinator", node_command("coordinator", "-f", str(self.fleet_file)),
                                env={"FLEET_SECRET": SECRET})

    def node(self, device: str, *args: str, wrap: Optional[List[str]] = None,
             env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        argv = node_command("node", self.devices[device], "--id", device, "--broker", self.url, "--fleet", FLEET, *args)
        return self.procs.start(device, [*(wrap or []), *argv], env={**self.credentials(device), **(env or {})})

    # ---- waiting -----------------------------------------------------------------------------------------

    def drain_detections(self) -> None:
        self.detections.drain()

    def retained(self, topic: str, timeout: float = 5.0) -> Any:
        """The retained message on ``topic``, as JSON (a fresh subscription gets it at once)."""
        sub = self.operator.subscribe(topic, qos=1, maxsize=10)
        try:
            msg = sub.get(timeout=timeout)
            return json.loads(msg.payload) if msg is not None and msg.payload else None
        finally:
            sub.close()

    def alive(self, *names: str) -> None:
        for name in names:
            code = self.procs[name].poll()
            assert code is None, f"{name} exited with {code}\n{self.procs.tails()}"

    def pause(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGCONT)

    def close(self) -> None:
        for name in list(self.procs.procs):
            if self.procs[name].poll() is None:
                self.resume(name)
        self.procs.stop()
        for client in self.clients:
            client.close(timeout=0.3)
        if self.broker is not None:
            self.broker.stop()
