"""``splitctl bench startup``: how long nodes take to become useful, from a cold and from a warm profile cache.

    splitctl bench startup [--model yolo11n.yaml] [--imgsz 640] [--rounds 3]

A local broker and the coordinator run throughout; each round starts a tail and then a head as the containers
would (``splitctl node …``, their own processes) and measures, from each process's start: the tail until its
metrics say it serves (model loaded), the head until its first frame's detections arrive. Round 1 runs with an
empty profile cache (a new device), later rounds with the cache it left (a recreated container with the cache
volume). Prints a table and writes bench/results/startup.json.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import start_local_broker
from splitinfer.broker.topics import Topics
from splitinfer.cluster.processes import Processes, node_command
from splitinfer.errors import BenchError
from splitinfer.node.models import as_assigned

__all__ = ["run_startup"]


def _wait(sub: Any, procs: Processes, what: str, test: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.get(timeout=0.05)
        if msg is not None:
            try:
                data = json.loads(msg.payload)
            except ValueError:
                continue
            if test(msg.topic, data):
                return time.monotonic()
        procs.check()
    raise BenchError(f"{what} did not happen within {timeout:.0f} s; see {procs.logs}")


def run_startup(model: str = "yolo11n.yaml", *, imgsz: int = 640, rounds: int = 3, timeout: float = 300.0,
                threads: int = 0) -> Dict[str, Any]:
    """Time tail and head startups over ``rounds`` (the first with an empty profile cache); results as data."""
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="splitinfer-startup-") as tmp, start_local_broker() as broker:
        topics = Topics("startup")
        env = {"SPLITINFER_CACHE": str(Path(tmp) / "cache")}
        folder, name, digest = as_assigned(model)  # a file is assigned by name and sha256 out of its folder
        common = ["--broker", broker.url, "--fleet", topics.fleet]
        nodes = common + (["--model-dir", folder] if folder else [])
        observer = MqttClient(BrokerConfig.from_url(broker.url, client_id="startup-observer"))
        metrics = observer.subscribe(topics.all_devices("metrics"), maxsize=10_000)
        detections = observer.subscribe(topics.all_detections(), maxsize=10_000)
        observer.connect(timeout=10)
        services = Processes(Path(tmp) / "logs", append=True)
        services.start("coordinator", node_command("coordinator", *common, "--model", name, "--imgsz", str(imgsz),
                                                   "--cut", "b", *(["--sha256", digest] if digest else [])), env=env)
        try:
            for k in range(rounds):
                rows.append(_round(k, nodes, env, Path(tmp) / "logs", metrics, detections, timeout, threads))
        finally:
            services.stop()
            observer.close(timeout=0.5)
    warm = [r for r in rows if r["cache"] == "warm"]

    def median(key: str, chosen: List[Dict[str, Any]]) -> Any:
        return round(statistics.median(r[key] for r in chosen), 2) if chosen else None

    return {"model": model, "imgsz": imgsz, "rounds": rows, "tail_ready_s_cold": rows[0]["tail_ready_s"],
            "head_first_frame_s_cold": rows[0]["head_first_frame_s"],
            "tail_ready_s_warm": median("tail_ready_s", warm), "head_first_frame_s_warm": median(
                "head_first_frame_s", warm), "target_s": 5.0,
            "target_met": bool(warm) and median("head_first_frame_s", warm) <= 5.0}


def _round(k: int, common: List[str], env: Dict[str, str], logs: Path, metrics: Any, detections: Any,
           timeout: float, threads: int) -> Dict[str, Any]:
    procs = Processes(logs, append=True)
    metrics.drain()
    detections.drain()
    try:
        started = time.monotonic()
        procs.start("tail", node_command("node", "tail", *common, "--id", "tail-1", "--threads", str(threads)),
                    env=env)
        ready = _wait(metrics, procs, "the tail serving",
                      lambda topic, m: topic.endswith("/tail-1/metrics") and m.get("ready") is True, timeout)
        head_started = time.monotonic()
        procs.start("head", node_command("node", "head", *common, "--id", "head-1", "--source", "synthetic:100000",
                                         "--fps", "5", "--threads", str(threads)), env=env)
        first = _wait(detections, procs, "the head's first detections", lambda topic, d: d.get("head") == "head-1",
                      timeout)
        return {"round": k + 1, "cache": "cold" if k == 0 else "warm", "tail_ready_s": round(ready - started, 2),
                "head_first_frame_s": round(first - head_started, 2)}
    finally:
        procs.stop()
