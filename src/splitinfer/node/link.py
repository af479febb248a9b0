"""A node's link to the fleet: who am I (device info), and the MQTT plumbing every node shares (state + last
will, retained info, following the retained assignment, periodic metrics, timing the link to the broker).

Part of the node runtime: Python 3.8-compatible.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

from splitinfer import __version__
from splitinfer.broker.client import MqttClient, Subscription
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment, DeviceInfo
from splitinfer.broker.topics import RESERVED_IDS, Topics
from splitinfer.errors import ProtocolError, TransportError

__all__ = ["NodeLink", "device_info", "link_changed", "measure_link", "rss_mb", "setup_logging"]

log = logging.getLogger("splitinfer.node")

MAX_BANDWIDTH = 1e12  # bit/s: what a link probe reports at most


def device_info(device_id: str, role: str, profile: Optional[Dict[str, Any]] = None, *,
                device: str = "") -> DeviceInfo:
    """This machine as the info topic describes it; ``device`` is the torch device the node runs on."""
    torch_version = cuda = ""
    accelerator = "cpu"
    try:
        import torch

        torch_version = torch.__version__
        if torch.cuda.is_available():
            cuda = str(torch.version.cuda or "")
            accelerator = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return DeviceInfo(
        id=device_id, role=role, version=__version__, arch=platform.machine(), accelerator=accelerator,
        torch=torch_version, cuda=cuda, memory_mb=_memory_mb(), python=platform.python_version(),
        profile=dict(profile or {}), device=device,
    )


def _memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 0


def rss_mb() -> float:
    """Resident memory of this process, from /proc (Linux), in MiB; 0 where unknown."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0.0


class NodeLink:
    """A node's connection: state ``online``/``offline`` (last will), retained info, the assignment it follows,
    and metrics published every ``metrics_every`` seconds from ``metrics()``.
    """

    def __init__(
        self,
        config: BrokerConfig,
        topics: Topics,
        info: DeviceInfo,
        *,
        metrics: Callable[[], Dict[str, Any]],
        metrics_every: float = 2.0,
    ) -> None:
        if info.id.lower() in RESERVED_IDS:
            raise TransportError(f"device id {info.id!r} is reserved (the coordinator's and the operators' own "
                                 "names); pick another --id")
        self.topics = topics
        self.info = info
        self.device_id = info.id
        config = config.with_client_id(config.client_id or f"{topics.fleet}-{info.id}")
        self.mqtt = MqttClient(config, state_topic=topics.state(info.id))
        self._metrics = metrics
        self._metrics_every = metrics_every
        self._stop = threading.Event()
        self._assign_sub: Optional[Subscription] = None
        self._thread: Optional[threading.Thread] = None
        self.bad_assignments = 0
        self.failed = ""

    def start(self, timeout: float = 30.0) -> None:
        self._assign_sub = self.mqtt.subscribe(self.topics.assign(self.device_id), qos=1, maxsize=16)
        self.mqtt.connect(timeout=timeout)
        self._announce()
        self._thread = threading.Thread(target=self._metrics_loop, name="metrics", daemon=True)
        self._thread.start()
        self.publish_metrics()  # at once: the coordinator watches metrics to know a node is alive and ready

    def _announce(self) -> None:
        # retained, and published again after every reconnect (a restarted broker may have forgotten it);
        # the client re-publishes the "online" state itself
        self.mqtt.announce(self.topics.info(self.device_id), self.info.to_json())

    def update_profile(self, profile: Dict[str, Any]) -> None:
        """Publish (retained) new info carrying ``profile``, e.g. after measuring layers or the link."""
        from dataclasses import replace

        self.info = replace(self.info, profile=dict(profile))
        self._announce()

    def fail(self, reason: str) -> None:
        """Say, retained, that this node cannot serve and why: state ``failed``, the reason in its info. The
        caller then exits non-zero, so Docker's restart policy and deploy's health check see it too."""
        from dataclasses import replace

        self.failed = reason[:1000]
        log.error("%s: failed: %s", self.device_id, self.failed)
        self.info = replace(self.info, failure=self.failed)
        try:
            if self.mqtt.connected:
                self._announce()
            self.mqtt.set_state(b"failed", timeout=2.0)  # said again on a reconnect, and left there at close
        except Exception:
            log.debug("publishing the failure failed", exc_info=True)

    def next_assignment(self, timeout: float = 0.0) -> Optional[Assignment]:
        """The newest assignment (by epoch, then generation) received since the last call (None if none); bad ones
        are logged and skipped."""
        newest = None
        sub = self._assign_sub
        if sub is None:
            return None
        first = sub.get(timeout) if timeout > 0 else None
        for msg in ([first] if first else []) + sub.drain():
            if not msg.payload:
                continue  # a cleared retained assignment
            try:
                candidate = Assignment.from_json(msg.payload)
            except ProtocolError as exc:
                self.bad_assignments += 1
                log.warning("ignoring assignment: %s", exc)
                continue
            if candidate.newer_than(newest):
                newest = candidate
        return newest

    def publish_metrics(self, *, final: bool = False) -> None:
        """Periodic reports go at QoS 0; the ``final`` one (at close) at QoS 1, waiting for the broker's ack, so
        a node's last word (frames sent, source done) is not lost to the disconnect that follows."""
        data = self._metrics()
        data.update(time=time.time(), mqtt=self.mqtt.counters(), rss_mb=round(rss_mb(), 1))
        payload = json.dumps(data).encode()
        if final:
            self.mqtt.publish(self.topics.metrics(self.device_id), payload, qos=1, timeout=2.0)
        else:
            self.mqtt.publish(self.topics.metrics(self.device_id), payload, qos=0)

    def _metrics_loop(self) -> None:
        while not self._stop.wait(self._metrics_every):
            try:
                self.publish_metrics()
            except Exception:  # metrics must never take a node down
                log.exception("publishing metrics failed")

    def close(self) -> None:
        """Say goodbye (final metrics; state ``offline`` unless the node failed) and disconnect."""
        self._stop.set()
        if self.mqtt.connected:
            try:
                self.publish_metrics(final=True)
            except Exception:
                log.debug("final publish failed", exc_info=True)
        self.mqtt.close()


def measure_link(mqtt: MqttClient, topic: str, *, pings: int = 3, first_bytes: int = 16 * 1024,
                 max_bytes: int = 2 * 1024 * 1024, target_ms: float = 150.0, timeout: float = 30.0) -> Dict[str, float]:
    """Round-trip time and bandwidth from this client to its broker, timed with QoS 1 publishes to ``topic``
    (each returns when the broker's PUBACK arrives): the fastest of ``pings`` tiny publishes is the RTT; probes
    of growing size (×4, up to ``max_bytes``) run until one takes ``target_ms`` beyond the RTT, and its bytes
    over that extra time is the bandwidth. Costs about ``target_ms`` of link time plus a few round trips."""

    def timed(size: int) -> float:
        t = time.perf_counter()
        mqtt.publish(topic, bytes(size), qos=1, timeout=timeout)
        return (time.perf_counter() - t) * 1000.0

    rtt = min(timed(16) for _ in range(max(1, pings)))
    size = first_bytes
    while True:
        spent = timed(size)
        if spent - rtt >= target_ms or size >= max_bytes:
            break
        size = min(max_bytes, size * 4)
    transfer = max(spent - rtt, 1e-3)
    bandwidth = min(size * 8 * 1000.0 / transfer, MAX_BANDWIDTH)  # loopback can time "infinitely" fast
    return {"bandwidth_bps": round(bandwidth), "rtt_ms": round(rtt, 3), "probe_bytes": size,
            "at": round(time.time(), 3)}


def link_changed(before: Optional[Dict[str, Any]], after: Dict[str, Any], fraction: float) -> bool:
    """Whether the bandwidth moved by more than ``fraction`` (of the old value) since ``before``."""
    if not before or not before.get("bandwidth_bps"):
        return True
    old, new = float(before["bandwidth_bps"]), float(after["bandwidth_bps"])
    return abs(new - old) > fraction * old


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
