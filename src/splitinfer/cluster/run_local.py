"""``splitctl run --local``: a broker, the coordinator, one tail and one head as separate processes on this
machine, a source run through them, and the results written to a folder.

Order (each problem is found as early as it can be, and said once):

1. without the model: the source exists and opens (file, folder, image, synthetic), the cut's syntax, the bits;
2. with the model (no process yet): a missing Ultralytics weights name falls back to its config (``on_note``
   says so at once), the model loads, the cut fits it, the input size fits its stride;
3. the broker, the coordinator and the tail; once the tail is online, the head;
4. detections are gathered until every frame the head sent is accounted for: detected, or counted as dropped
   by the tail (full queue, bad payload). A slow tail is waited for as long as it makes progress; only when
   frames are outstanding and nothing has moved for ``stall`` seconds does the run give up (ProcessError,
   after writing what arrived).

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
from typing import Any, Callable, Dict, List, Optional, Tuple

from splitinfer.codec.settings import DEFAULT_KEYFRAME_INTERVAL, DEFAULT_QUALITY
from splitinfer.errors import ModelError, ProcessError, SourceError
from splitinfer.node.models import as_assigned

from .processes import Processes, node_command

__all__ = ["CSV_COLUMNS", "LocalRun", "RunStatus", "Tally", "probe_source", "resolve_local_model", "run_local"]

CSV_COLUMNS = (
    "head", "seq", "capture_ts", "capture_ms", "preprocess_ms", "head_ms", "encode_ms", "transit_ms", "decode_ms",
    "tail_ms", "postprocess_ms", "e2e_ms", "payload_bytes", "detections",
)
TAIL_QUEUE_MAX = 5000
"""A finite source read at ``--fps 0`` gets a tail queue as long as the source (up to this many frames), so a
tail that falls behind drops nothing; the default queue (64) otherwise."""
_PRESETS = ("a", "b", "c", "d", "auto", "local", "offload")


@dataclass
class LocalRun:
    """What ``run --local`` was asked to do."""

    model: str = "yolo11n.pt"
    source: str = "synthetic"
    frames: Optional[int] = 60
    cut: str = "b"
    bits: int = 4
    quality: int = DEFAULT_QUALITY  # at cuts a calibration table covers
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL
    tables: List[Path] = field(default_factory=list)  # calibration tables given (none: calibrate on the source)
    calibrate: bool = True
    calibration_frames: int = 8
    imgsz: int = 640
    batch: int = 1
    fps: float = 0.0
    out: Path = Path("out")
    annotate: bool = True
    broker: str = "mosquitto"
    stall: float = 60.0  # seconds without progress, with frames outstanding, before giving up
    tail_batch: int = 8
    allow_offload: bool = False  # the head may send its frames to the tail (cut offload, or auto's choice)
    head_args: List[str] = field(default_factory=list)  # extra `splitctl node head` options (benchmarks)
    tail_args: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


@dataclass
class RunStatus:
    """Where a run stands, for a progress line: ``phase``, the model in use, frames sent by the head (from its
    metrics, every 2 s, and its final count), detections received, and the frames expected (None: unknown)."""

    phase: str
    model: str
    sent: int = 0
    detected: int = 0
    total: Optional[int] = None


# ---- checks before anything starts ----------------------------------------------------------------------


def probe_source(spec: str) -> Optional[int]:
    """Open a finite source (file, folder, image, ``synthetic[:N]``) and read its first frame; return how many
    frames it holds (None when unknown: cameras, URLs, pipelines, videos that do not say). SourceError when it
    does not exist or does not open. Live sources are left to the head, which owns the camera."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        count = spec.partition(":")[2] or "60"
        if not count.isdigit() or int(count) < 1:
            raise SourceError(f"source {spec!r}: expected synthetic or synthetic:N with N ≥ 1", source=spec)
        return int(count)
    path = Path(spec)
    if not path.exists() and ("://" in spec or "!" in spec or spec.isdigit()):
        return None  # a camera, a URL or a pipeline: the head opens it
    from splitinfer.head.sources import IMAGE_SUFFIXES, open_source

    frames = open_source(spec, limit=1)
    try:
        first = next(frames, None)  # SourceError for a missing or unreadable one
    finally:
        getattr(frames, "close", lambda: None)()  # release the video now
    if first is None:
        raise SourceError(f"source {spec!r}: no frames in it (an empty or unreadable video?)", source=spec)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return 1
    return _video_frames(spec)


def _video_frames(spec: str) -> Optional[int]:
    import cv2

    capture = cv2.VideoCapture(spec)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return count if count > 0 else None


def check_cut_syntax(cut: str) -> None:
    """A preset, ``auto``, a mode or a layer number; whether the number fits the model is checked with it."""
    key = cut.strip().lower()
    if key not in _PRESETS and not key.isdigit():
        raise ModelError(f"unknown cut {cut!r}: expected a|b|c|d, auto, local, offload, or a layer number")


def check_settings(run: LocalRun) -> Optional[int]:
    """Everything that needs no model: the source, the cut's syntax, the bits. Returns the frames expected
    (None: unknown)."""
    count = probe_source(run.source)
    check_cut_syntax(run.cut)
    from splitinfer.codec import CodecSettings

    CodecSettings(bits=run.bits, quality=run.quality, keyframe_interval=run.keyframe_interval)
    if run.frames and count:
        return min(run.frames, count)
    return run.frames or count


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
    notes.append(f"{model} is not on this machine (weights are not downloaded): running {fallback} with random "
                 "weights, so boxes are meaningless (timings and sizes are real); pass --model PATH.pt")
    return fallback


def _ships_config(name: str) -> bool:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(name)
    except Exception:  # Ultralytics raises FileNotFoundError and bare Exceptions here
        return False
    return True


def cuts_to_calibrate(cut: str) -> List[str]:
    """The cuts a run can send features at: the one asked for, all four presets for ``auto``, none for local
    and offload (no features cross)."""
    key = cut.strip().lower()
    if key in ("local", "offload"):
        return []
    return ["a", "b", "c", "d"] if key == "auto" else [key]


def prepare_models(run: LocalRun, model: str, on_note: Callable[[str], None],
                   on_phase: Callable[[str], None], loaded: Any = None) -> Tuple[str, str, str, List[Path]]:
    """The nodes' model folder for this run, ``OUT/models``: the model file (linked, else copied) and the codec's
    calibration tables — the ones given, else calibrated on the first frames of the source (cached by model,
    cut, size and frames), else none (the version-1 codec at ``bits``, said in a note). Returns (folder, model
    name in it, its sha256, the tables)."""
    import shutil

    folder = (run.out / "models").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    source_folder, name, digest = as_assigned(model)
    if source_folder:
        _place(Path(source_folder) / name, folder / name)
    tables = []
    for given in run.tables:
        if not given.is_file():
            raise ModelError(f"--table {given}: no such file")
        shutil.copyfile(given, folder / given.name)
        tables.append(folder / given.name)
    if not run.tables and run.calibrate and cuts_to_calibrate(run.cut):
        on_phase("calibrating the codec")
        tables = _calibrated(run, model, folder, on_note, loaded)
    return str(folder), name, digest, tables


def _place(src: Path, dst: Path) -> None:
    import shutil

    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def _calibrated(run: LocalRun, model: str, folder: Path, on_note: Callable[[str], None],
                loaded: Any = None) -> List[Path]:
    """Tables for the run's cuts, calibrated on the source's first ``calibration_frames`` frames."""
    import hashlib
    import shutil

    import numpy as np

    from splitinfer.head.sources import sample_frames
    from splitinfer.splitting import load_model
    from splitinfer.splitting.model import default_imgsz
    from splitinfer.splitting.sensitivity import calibrate_files

    images = sample_frames(run.source, run.calibration_frames)
    m = loaded if loaded is not None else load_model(model)
    size = default_imgsz(m, run.imgsz)
    seen = hashlib.sha256(b"".join(np.ascontiguousarray(i).tobytes() for i in images)).hexdigest()[:12]
    cache = Path(os.environ.get("SPLITINFER_CACHE", str(Path.home() / ".cache" / "splitinfer"))) / "tables"
    stem = f"{m.fingerprint[:16]}-{seen}"
    out = []
    for cut in cuts_to_calibrate(run.cut):
        cached = cache / f"{stem}-{cut}-{size}.npz"
        if not cached.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            try:
                calibrate_files(m, [cut], images, folder=cache, stem=stem, imgsz=size)
            except ModelError as exc:
                on_note(f"the codec is not calibrated, so it sends the version-1 features at {run.bits} bits: {exc}")
                return []
        shutil.copyfile(cached, folder / f"{Path(model).stem}-{cut}-{size}.npz")
        out.append(folder / f"{Path(model).stem}-{cut}-{size}.npz")
    run.notes.append(f"codec calibrated on the first {len(images)} frame(s) of the source (cuts "
                     f"{', '.join(cuts_to_calibrate(run.cut))}); quality {run.quality}")
    return out


def check_job(run: LocalRun, model: str) -> Any:
    """Fail here, before any process starts, on what the nodes would refuse: the model, the cut, the codec.
    Returns the loaded model (calibration uses it)."""
    from splitinfer.codec import CodecSettings
    from splitinfer.splitting import load_model
    from splitinfer.splitting.model import default_imgsz

    loaded = load_model(model)
    default_imgsz(loaded, run.imgsz)
    if run.cut.strip().lower() not in ("auto", "local", "offload"):  # auto: the coordinator picks from profiles
        loaded.graph.resolve_cut(run.cut)
    CodecSettings(bits=run.bits)
    return loaded


# ---- the run ----------------------------------------------------------------------------------------------


class Tally:
    """Accounting for the frames the head sends: each is detected or dropped by the tail (from the tail's
    metrics); ``progressed`` is when either last moved, so a slow tail is waited for and a stuck one is not."""

    def __init__(self) -> None:
        self.sent = 0
        self.detected = 0
        self.tail_lost = 0  # the tail's dropped (full queue) + decode_errors + rejected
        self.tail_frames = 0
        self.progressed = time.monotonic()

    def outstanding(self) -> int:
        return max(0, self.sent - self.detected - self.tail_lost)

    def on_detection(self) -> None:
        self.detected += 1
        self.progressed = time.monotonic()

    def on_head_metrics(self, data: Dict[str, Any]) -> None:
        sent = _count(data.get("frames_sent"))
        if sent > self.sent:
            self.sent = sent

    def on_tail_metrics(self, data: Dict[str, Any]) -> None:
        lost = sum(_count(data.get(k)) for k in ("dropped", "decode_errors", "rejected"))
        frames = _count(data.get("frames"))
        if lost > self.tail_lost or frames > self.tail_frames:
            self.progressed = time.monotonic()
        self.tail_lost, self.tail_frames = max(lost, self.tail_lost), max(frames, self.tail_frames)

    def stalled(self, stall: float) -> bool:
        return self.outstanding() > 0 and time.monotonic() - self.progressed > stall


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def run_local(
    run: LocalRun,
    *,
    on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
    on_tick: Optional[Callable[[Processes], None]] = None,
    on_status: Optional[Callable[[RunStatus], None]] = None,
    on_note: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Run the job; ``on_note(text)`` as soon as something the user must know is found (random weights),
    ``on_status(status)`` as the run moves, ``on_progress(received, total)`` after each detection,
    ``on_tick(processes)`` about every 0.2 s (benchmarks sample memory there)."""
    from splitinfer.broker.client import MqttClient
    from splitinfer.broker.config import BrokerConfig
    from splitinfer.broker.local import start_local_broker
    from splitinfer.broker.topics import Topics

    total = check_settings(run)
    notes_before = len(run.notes)
    model = resolve_local_model(run.model, run.notes)
    for note in run.notes[notes_before:]:
        if on_note is not None:
            on_note(note)
    status = RunStatus("loading the model", model, total=total)
    report = on_status or (lambda s: None)
    report(status)
    loaded = check_job(run, model)
    run.out.mkdir(parents=True, exist_ok=True)

    def phase(text: str) -> None:
        status.phase = text
        report(status)

    placed = prepare_models(run, model, on_note or (lambda text: None), phase, loaded)
    topics = Topics(f"local-{os.getpid()}")
    records: List[Dict[str, Any]] = []
    tally = Tally()
    status.phase = "starting the broker"
    report(status)
    with start_local_broker(prefer=run.broker) as broker, Processes(run.out / "logs") as procs:
        operator = MqttClient(BrokerConfig.from_url(broker.url, client_id=f"{topics.fleet}-operator"))
        subs = {
            "detections": operator.subscribe(topics.all_detections(), qos=0, maxsize=1_000_000, drop="newest"),
            "head": operator.subscribe(topics.metrics("head-1"), qos=1, maxsize=1000, drop="oldest"),
            "tail": operator.subscribe(topics.metrics("tail-1"), qos=1, maxsize=1000, drop="oldest"),
        }
        operator.connect(timeout=10)
        tail_state = operator.subscribe(topics.state("tail-1"), qos=1)
        try:
            status.phase = "starting the nodes"
            report(status)
            _start_processes(run, placed, broker.url, topics.fleet, procs, total)
            _wait_online(tail_state, procs)
            status.phase = "running"
            report(status)
            _start_head(run, placed[0], broker.url, topics.fleet, procs)
            started = time.monotonic()
            head_summary = _collect(run, procs, subs, records, tally, status, report, on_progress, on_tick)
        finally:
            procs.stop()
            operator.close()
        elapsed = time.monotonic() - started
        broker_kind = broker.kind
    records.sort(key=lambda r: r["seq"])
    _write_outputs(run, records)
    if tally.outstanding():
        raise ProcessError(
            f"the tail made no progress for {run.stall:g} s with {tally.outstanding()} of {tally.sent} frames "
            f"outstanding ({tally.detected} detected; written to {run.out}/); see {procs.log('tail')}",
            name="tail", log=str(procs.log("tail")))
    return _summary(run, model, broker_kind, records, head_summary, tally, elapsed, placed[3])


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


def _start_processes(run: LocalRun, placed: Tuple[str, str, str, List[Path]], url: str, fleet: str,
                     procs: Processes, total: Optional[int]) -> None:
    """The coordinator (with this run's two devices as its inventory, the model pinned by sha256 and the codec's
    tables), then the tail, which loads the model from the run's model folder."""
    folder, name, digest, tables = placed
    common = ["--broker", url, "--fleet", fleet]
    procs.start("coordinator", node_command(
        "coordinator", *common, "--model", name, "--sha256", digest, "--imgsz", str(run.imgsz), "--cut", run.cut,
        "--bits", str(run.bits), "--quality", str(run.quality), "--keyframe-interval", str(run.keyframe_interval),
        *[arg for t in tables for arg in ("--table", str(t))],
        "--batch", str(run.batch), "--tail-batch", str(run.tail_batch),
        "--inventory", "tail-1=tail", "--inventory", "head-1=head",
        *(["--offload", "head-1"] if run.allow_offload else [])))
    # lossless over a file: room in the tail's queue for every frame (run.tail_args, given after, still win)
    queue = ["--queue", str(min(max(64, total), TAIL_QUEUE_MAX))] if run.fps <= 0 and total else []
    procs.start("tail", node_command("node", "tail", *common, "--id", "tail-1", "--model-dir", folder, *queue,
                                     *run.tail_args))


def _start_head(run: LocalRun, folder: str, url: str, fleet: str, procs: Processes) -> None:
    procs.start("head", node_command(
        "node", "head", "--broker", url, "--fleet", fleet, "--id", "head-1", "--source", run.source, "--fps",
        str(run.fps), "--model-dir", folder, *(["--frames", str(run.frames)] if run.frames else []),
        *(["--allow-offload"] if run.allow_offload else []),
        *run.head_args), stdout=subprocess.PIPE)  # the head prints its final counts as JSON


def _json_dict(payload: bytes) -> Dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _collect(run: LocalRun, procs: Processes, subs: Dict[str, Any], records: List[Dict[str, Any]], tally: Tally,
             status: RunStatus, report: Callable[[RunStatus], None],
             on_progress: Optional[Callable[[int, Optional[int]], None]],
             on_tick: Optional[Callable[[Processes], None]]) -> Dict[str, Any]:
    """Gather detections until the head has finished and every frame it sent is accounted for, or the tail
    has made no progress for ``run.stall`` seconds with frames outstanding."""
    head_summary: Optional[Dict[str, Any]] = None
    next_tick = time.monotonic()
    while True:
        if on_tick is not None and time.monotonic() >= next_tick:
            on_tick(procs)
            next_tick = time.monotonic() + 0.2
        for msg in subs["head"].drain():
            tally.on_head_metrics(_json_dict(msg.payload))
        for msg in subs["tail"].drain():
            tally.on_tail_metrics(_json_dict(msg.payload))
        msg = subs["detections"].get(timeout=0.2)
        if msg is not None:
            record = json.loads(msg.payload)
            record["_received"] = msg.received_wall  # for the summary's fps; not written out
            records.append(record)
            tally.on_detection()
            if on_progress:
                on_progress(len(records), status.total)
        status.sent, status.detected = max(tally.sent, tally.detected), tally.detected  # metrics come every 2 s
        report(status)
        if msg is not None:
            continue
        procs.check(["coordinator", "tail"])
        head = procs["head"]
        if head.poll() is None:
            continue
        if head.returncode != 0:
            raise procs.failure("head", "failed")
        if head_summary is None:
            head_summary = _json_dict(head.stdout.read() or b"{}") if head.stdout else {}
            tally.on_head_metrics(head_summary)
            tally.progressed = time.monotonic()
            status.phase = "finishing"
        if tally.outstanding() == 0 or tally.stalled(run.stall):
            return head_summary


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


def delivered_fps(records: List[Dict[str, Any]]) -> Optional[float]:
    """Frames detected per second, from the first frame's capture to the last detection's arrival: frames that
    arrive together (one tail batch) do not make the rate infinite, and the first frame's latency counts."""
    if not records:
        return None
    span = max(r["_received"] for r in records) - min(r["timestamp"] for r in records)
    return round(len(records) / max(span, 1e-3), 2)


def _where(record: Dict[str, Any]) -> str:
    """How a frame ran: its cut (split), or ``local`` / ``offload``."""
    mode = record.get("mode") or "split"
    return str(record["cut"]) if mode == "split" else str(mode)


def _cuts(records: List[Dict[str, Any]]) -> Tuple[Optional[int], Dict[str, int]]:
    """The cut of the last frame (where ``auto`` settled; None for local or offload) and how many frames ran at
    each cut or mode."""
    seen: Dict[str, int] = {}
    for r in records:
        seen[_where(r)] = seen.get(_where(r), 0) + 1
    last = max(records, key=lambda r: r["timestamp"])["cut"] if records else None
    return last, seen


def _summary(run: LocalRun, model: str, broker_kind: str, records: List[Dict[str, Any]],
             head: Dict[str, Any], tally: Tally, elapsed: float, tables: List[Path]) -> Dict[str, Any]:
    e2e = [r["timings"]["e2e_ms"] for r in records]
    stages = {}
    for stage in CSV_COLUMNS[3:12]:
        values = [r["timings"][stage] for r in records if stage in r["timings"]]
        stages[stage] = {"p50": _percentile(values, 0.5), "p99": _percentile(values, 0.99)}
    captured = max(_count(head.get("frames_captured")), tally.sent, len(records))
    cut, cuts = _cuts(records)
    return {
        "model": model, "source": run.source, "cut": cut, "cuts": cuts, "cut_spec": run.cut,
        "modes": sorted({str(r.get("mode") or "split") for r in records}),
        "bits": run.bits, "quality": run.quality, "keyframe_interval": run.keyframe_interval,
        "tables": [str(t) for t in tables], "imgsz": run.imgsz, "broker": broker_kind,
        "frames": len(records), "frames_captured": captured, "frames_sent": tally.sent,
        "dropped": captured - len(records),
        "drops": {"head": captured - tally.sent, "tail": tally.tail_lost},
        "fps": delivered_fps(records),
        "e2e_ms_p50": _percentile(e2e, 0.5), "e2e_ms_p99": _percentile(e2e, 0.99),
        "payload_bytes_mean": round(sum(r["payload_bytes"] for r in records) / len(records)) if records else 0,
        "stages_ms": stages, "wall_s": round(elapsed, 2), "out": str(run.out), "notes": run.notes,
    }
