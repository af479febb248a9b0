"""A broker for one machine (``splitctl run --local``) and for tests: `start_local_broker`.

    with start_local_broker() as broker:          # Mosquitto if installed, else the embedded amqtt broker
        config = BrokerConfig(broker.url)

Both kinds listen on loopback only, allow anonymous clients, keep nothing on disk, and accept payloads up to
``max_payload`` bytes (multi-megabyte feature frames). Each runs as a child process, so it never shares the
GIL with a node; `LocalBroker.stop` ends it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from splitinfer.broker.config import DEFAULT_MAX_PAYLOAD
from splitinfer.errors import TransportError

__all__ = [
    "LocalBroker",
    "child_env",
    "find_mosquitto",
    "free_port",
    "local_mosquitto_conf",
    "run_mosquitto",
    "start_local_broker",
]

_KINDS = ("mosquitto", "embedded")


def find_mosquitto() -> Optional[str]:
    """The mosquitto binary: on PATH, or Debian's /usr/sbin/mosquitto (sbin is often not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def embedded_available() -> bool:
    return sys.version_info >= (3, 10) and importlib.util.find_spec("amqtt") is not None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def local_mosquitto_conf(port: int, *, host: str = "127.0.0.1", max_payload: int = DEFAULT_MAX_PAYLOAD) -> str:
    """mosquitto.conf for a throwaway loopback broker: anonymous, no persistence, big payloads allowed."""
    lines = [
        "# splitinfer local broker (loopback only, anonymous, nothing on disk)",
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence false",
        f"message_size_limit {max_payload}",
        f"max_packet_size {max_payload + 65536}",  # payload + topic + header
        "max_queued_messages 1000",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")  # as root, mosquitto would otherwise switch to the 'mosquitto' user
    return "\n".join(lines) + "\n"


class LocalBroker:
    """A running local broker process. ``url`` is what clients connect to."""

    def __init__(self, kind: str, host: str, port: int, process: subprocess.Popen, workdir: str) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self.process = process
        self._workdir = workdir

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"LocalBroker({self.kind!r}, {self.url!r}, pid={self.process.pid})"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """What the broker wrote to stderr so far."""
        try:
            return (Path(self._workdir) / "broker.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """End the broker process and remove its files. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_local_broker(
    port: int = 0,
    *,
    prefer: str = "mosquitto",
    host: str = "127.0.0.1",
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    timeout: float = 10.0,
) -> LocalBroker:
    """Start a local broker and return once it accepts connections.

    ``port=0`` picks a free port. ``prefer="mosquitto"`` uses Mosquitto when installed and falls back to the
    embedded amqtt broker; ``prefer="embedded"`` does the opposite. Raises `TransportError` if neither is
    available or the broker does not come up within ``timeout`` seconds.
    """
    if prefer not in _KINDS:
        raise TransportError(f"prefer must be 'mosquitto' or 'embedded', got {prefer!r}")
    order = list(_KINDS) if prefer == "mosquitto" else list(reversed(_KINDS))
    mosquitto = find_mosquitto()
    for kind in order:
        if kind == "mosquitto" and mosquitto:
            return _start(kind, _mosquitto_cmd(mosquitto), host, port or free_port(host), max_payload, timeout)
        if kind == "embedded" and embedded_available():
            return _start(kind, _embedded_cmd(), host, port or free_port(host), max_payload, timeout)
    raise TransportError(
        "no local MQTT broker available: install Mosquitto (apt install mosquitto) "
        "or, on Python >= 3.10, the embedded one (pip install 'splitinfer[broker]')"
    )


def _mosquitto_cmd(binary: str) -> List[str]:
    return [binary, "-c", "{conf}"]


def _embedded_cmd() -> List[str]:
    return [sys.executable, "-m", "splitinfer.broker.embedded", "--host", "{host}", "--port", "{port}"]


def child_env() -> Dict[str, str]:
    """The environment for a child process that must import this very splitinfer (a source checkout may shadow
    an installed one): ours, with this package's folder first on PYTHONPATH."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _check_port_free(host: str, port: int) -> None:
    # Otherwise the readiness check could connect to whoever already listens there.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise TransportError(f"cannot start a local broker on {host}:{port}: {exc.strerror}") from None


def run_mosquitto(config_path: str, port: int, *, host: str = "127.0.0.1", timeout: float = 10.0) -> LocalBroker:
    """Run Mosquitto with a configuration of your own (e.g. from `render_mosquitto_files`) that listens on
    ``host:port``; return once it accepts connections."""
    binary = find_mosquitto()
    if binary is None:
        raise TransportError("mosquitto is not installed (apt install mosquitto)")
    _check_port_free(host, port)
    workdir = tempfile.mkdtemp(prefix="splitinfer-mosquitto-")
    return _launch("mosquitto", [binary, "-c", str(config_path)], host, port, workdir, timeout)


def _start(kind: str, template: List[str], host: str, port: int, max_payload: int, timeout: float) -> LocalBroker:
    _check_port_free(host, port)
    workdir = tempfile.mkdtemp(prefix=f"splitinfer-{kind}-")
    conf = Path(workdir) / "mosquitto.conf"
    conf.write_text(local_mosquitto_conf(port, host=host, max_payload=max_payload))
    cmd = [part.format(conf=conf, host=host, port=port) for part in template]
    return _launch(kind, cmd, host, port, workdir, timeout)


def _launch(kind: str, cmd: List[str], host: str, port: int, workdir: str, timeout: float) -> LocalBroker:
    with open(Path(workdir) / "broker.log", "wb") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
    broker = LocalBroker(kind, host, port, process, workdir)
    try:
        _wait_listening(broker, timeout)
    except TransportError as exc:
        text = broker.log()
        broker.stop()
        raise TransportError(f"the {kind} broker did not come up on {broker.url} ({exc}); its log:\n{text}") from None
    return broker


def _wait_listening(broker: LocalBroker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not broker.running:
            raise TransportError(f"exited with status {broker.process.returncode}")
        try:
            with socket.create_connection((broker.host, broker.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TransportError(f"not listening after {timeout:g} s")
