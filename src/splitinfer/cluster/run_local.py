"""``splitctl run --local``: a broker, the coordinator, one tail and one head as separate processes on this
machine, a source run through them, and the results written to a folder.

Not part of the node runtime: it orchestrates the same programs the containers run (:mod:`.processes`).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from splitinfer.errors import ModelError, ProcessError
from splitinfer.node.models import as_assigned

from .processes import Processes, node_command

__all__ = ["CSV_COLUMNS", "LocalRun", "resolve_local_model", "run_local"]

CSV_COLUMNS = (
    "head", "seq", "capture_ts", "capture_ms", "preprocess_ms", "head_ms", "encode_ms", "transit_ms", "decode_ms",
    "tail_ms", "postprocess_ms", "e2e_ms", "payload_bytes", "detections",
)


@dataclass
class LocalRun:
    """What ``run --local`` was asked to do."""

    model: str = "yolo11n.pt"
    source: str = "synthetic"
    frames: Optional[int] = 60
    cut: str = "b"
    bits: int = 4
    imgsz: int = 640
    batch: int = 1
    fps: float = 0.0
    out: Path = Path("out")
    annotate: bool = True
    broker: str = "mosquitto"
    timeout: float = 600.0
    tail_batch: int = 8
    head_args: List[str] = field(default_factory=list)  # extra `splitctl node head` options (benchmarks)
    tail_args: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def resolve_local_model(model: str, notes: List[str]) -> str:
    """A local file, or a config Ultralytics ships. Weights are not downloaded: a missing Ultralytics weights name
    such as ``yolo11n.pt`` falls back to its config ``yolo11n.yaml`` (random weights), and says so; any other
    missing file is an error."""
    if not model.endswith(".pt") or os.path.isfile(model):
        return model
    fallback = Path(model).with_suffix(".yaml").name
    if os.sep in model or not _ships_config(fallback):
        raise ModelError(f"{model}: model file not found (weights are not downloaded; pass a local .pt, or a "
                         ".yaml config for random weights)")
    notes.append(f"{model} is not on this machine and weights are not downloaded here; using {fallback} with "
                 "random weights (detections are meaningless, timings and sizes are real). "
                 "Pass --model PATH.pt for real ones.")
    return fallback


def _ships_config(name: str) -> bool:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(name)
    except Exception:  # Ultralytics raises FileNotFoundError and bare Exceptions here
        return False
    return True


def check_job(run: LocalRun, model: str) -> None:
    """Fail here, before any process starts, on what the nodes would refuse: the model, the cut, the codec."""
    from splitinfer.codec import CodecSettings
    from splitinfer.splitting import load_model
    from splitinfer.splitting.model import default_imgsz

    loaded = load_model(model)
    default_imgsz(loaded, run.imgsz)
    loaded.graph.resolve_cut(run.cut)
    CodecSettings(bits=run.bits)


def run_local(
    run: LocalRun,
    *,
    on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
    on_tick: Optional[Callable[[Processes], None]] = None,
) -> Dict[str, Any]:
    """Run the job; ``on_progress(received, total)`` after each detection, ``on_tick(processes)`` about every
    0.2 s (benchmarks sample memory there)."""
    from splitinfer.broker.client import MqttClient
    from splitinfer.broker.config import BrokerConfig
    from splitinfer.broker.local import start_local_broker
    from splitinfer.broker.topics import Topics

    model = resolve_local_model(run.model, run.notes)
    check_job(run, model)
    run.out.mkdir(parents=True, exist_ok=True)
    topics = Topics(f"local-{os.getpid()}")
    records: List[Dict[str, Any]] = []
    with start_local_broker(prefer=run.broker) as broker, Processes(run.out / "logs") as procs:
        operator = MqttClient(BrokerConfig.from_url(broker.url, client_id=f"{topics.fleet}-operator"))
        detections = operator.subscribe(topics.all_detections(), qos=0, maxsize=1_000_000, drop="newest")
        operator.connect(timeout=10)
        tail_state = operator.subscribe(topics.state("tail-1"), qos=1)
        try:
            _start_processes(run, model, broker.url, topics.fleet, procs)
            _wait_online(tail_state, procs)
            _start_head(run, model, broker.url, topics.fleet, procs)
            started = time.monotonic()
            head_summary = _collect(run, procs, detections, records, on_progress, on_tick)
        finally:
            procs.stop()
            operator.close()
        elapsed = time.monotonic() - started
        broker_kind = broker.kind
    records.sort(key=lambda r: r["seq"])
    _write_outputs(run, records)
    return _summary(run, model, broker_kind, records, head_summary, elapsed)


def _wait_online(sub: Any, procs: Processes, timeout: float = 120.0) -> None:
    """Until the tail says it is online: a head with no live tail gets no route and drops its frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.get(timeout=0.2)
        if msg is not None and msg.payload == b"online":
            return
        procs.check()
    raise ProcessError(f"the tail did not come online within {timeout:.0f} s; see {procs.log('tail')}", name="tail",
                       log=str(procs.log("tail")))


def _start_processes(run: LocalRun, model: str, url: str, fleet: str, procs: Processes) -> None:
    """The coordinator (with this run's two devices as its inventory, and the model pinned by sha256), then the
    tail, which loads the model from its folder."""
    folder, name, digest = as_assigned(model)
    common = ["--broker", url, "--fleet", fleet]
    procs.start("coordinator", node_command(
        "coordinator", *common, "--model", name, "--sha256", digest, "--imgsz", str(run.imgsz), "--cut", run.cut,
        "--bits", str(run.bits), "--batch", str(run.batch), "--tail-batch", str(run.tail_batch),
        "--inventory", "tail-1=tail", "--inventory", "head-1=head"))
    procs.start("tail", node_command("node", "tail", *common, "--id", "tail-1", "--model-dir", folder,
                                     *run.tail_args))


def _start_head(run: LocalRun, model: str, url: str, fleet: str, procs: Processes) -> None:
    folder, _, _ = as_assigned(model)
    procs.start("head", node_command(
        "node", "head", "--broker", url, "--fleet", fleet, "--id", "head-1", "--source", run.source, "--fps",
        str(run.fps), "--model-dir", folder, *(["--frames", str(run.frames)] if run.frames else []),
        *run.head_args), stdout=subprocess.PIPE)  # the head prints its final counts as JSON


def _collect(run: LocalRun, procs: Processes, sub: Any, records: List[Dict[str, Any]],
             on_progress: Optional[Callable[[int, Optional[int]], None]],
             on_tick: Optional[Callable[[Processes], None]]) -> Dict[str, Any]:
    """Gather detections until the head has finished and the tail has caught up (or gone quiet)."""
    deadline = time.monotonic() + run.timeout
    head_summary: Dict[str, Any] = {}
    quiet_since: Optional[float] = None
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        if on_tick is not None and time.monotonic() >= next_tick:
            on_tick(procs)
            next_tick = time.monotonic() + 0.2
        msg = sub.get(timeout=0.2)
        if msg is not None:
            record = json.loads(msg.payload)
            record["_received"] = msg.received_wall  # for the summary's fps; not written out
            records.append(record)
            quiet_since = None
            if on_progress:
                on_progress(len(records), run.frames)
            continue
        procs.check(["coordinator", "tail"])
        head = procs["head"]
        if head.poll() is None:
            continue
        if head.returncode != 0:
            raise procs.failure("head", "failed")
        if not head_summary:
            head_summary = json.loads(head.stdout.read() or b"{}") if head.stdout else {}
        if len(records) >= head_summary.get("frames_sent", 0):
            return head_summary
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since > 3.0:  # the rest were dropped on the way
            return head_summary
    raise ProcessError(f"run did not finish within {run.timeout:.0f} s; see {procs.logs}")


def _write_outputs(run: LocalRun, records: List[Dict[str, Any]]) -> None:
    with open(run.out / "detections.jsonl", "w") as fh:
        for record in records:
            fh.write(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}) + "\n")
    with open(run.out / "output.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in records:
            t = r["timings"]
            writer.writerow([r["head"], r["seq"], f"{r['timestamp']:.6f}", *(t.get(c, "") for c in CSV_COLUMNS[3:12]),
                             r["payload_bytes"], len(r["boxes"])])
    if run.annotate and records:
        _annotate(run, {r["seq"]: r for r in records})


def _annotate(run: LocalRun, by_seq: Dict[int, Dict[str, Any]]) -> None:
    """Draw the boxes on the frames they belong to (the source is re-read here: frames never left the head)."""
    import cv2

    from splitinfer.head.sources import open_source

    folder = run.out / "frames"
    folder.mkdir(exist_ok=True)
    for frame in open_source(run.source, limit=run.frames):
        record = by_seq.get(frame.index)
        if record is None:
            continue
        image = frame.image.copy()
        for box, name, score in zip(record["boxes"], record["names"], record["scores"]):
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 255), 2)
            cv2.putText(image, f"{name} {score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 200, 255), 1, cv2.LINE_AA)
        cv2.imwrite(str(folder / f"{frame.index:06d}.jpg"), image)


def _percentile(values: List[float], q: float) -> Optional[float]:
    from splitinfer.node.stats import percentile

    return round(percentile(sorted(values), q), 2) if values else None


def _summary(run: LocalRun, model: str, broker_kind: str, records: List[Dict[str, Any]],
             head: Dict[str, Any], elapsed: float) -> Dict[str, Any]:
    e2e = [r["timings"]["e2e_ms"] for r in records]
    arrivals = [r["_received"] for r in records]
    span = (max(arrivals) - min(arrivals)) if len(records) > 1 else 0  # detections per second, as delivered
    stages = {}
    for stage in CSV_COLUMNS[3:12]:
        values = [r["timings"][stage] for r in records if stage in r["timings"]]
        stages[stage] = {"p50": _percentile(values, 0.5), "p99": _percentile(values, 0.99)}
    captured = int(head.get("frames_captured", len(records)))
    return {
        "model": model, "source": run.source, "cut": records[0]["cut"] if records else None, "cut_spec": run.cut,
        "bits": run.bits, "imgsz": run.imgsz, "broker": broker_kind,
        "frames": len(records), "frames_captured": captured, "dropped": max(0, captured - len(records)),
        "fps": round((len(records) - 1) / span, 2) if span > 0 else None,
        "e2e_ms_p50": _percentile(e2e, 0.5), "e2e_ms_p99": _percentile(e2e, 0.99),
        "payload_bytes_mean": round(sum(r["payload_bytes"] for r in records) / len(records)) if records else 0,
        "stages_ms": stages, "wall_s": round(elapsed, 2), "out": str(run.out), "notes": run.notes,
    }
