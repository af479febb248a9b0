"""``splitctl bench e2e``: every mode of the offload spectrum over shaped links, with the head on a CPU budget.

A head and a tail run in separate network namespaces joined by a veth pair shaped with tbf (:mod:`.netns`); a
relay in the head's namespace adds the link's delay (:mod:`.delay`; these kernels have no ``netem``); the head's
processes run in a cgroup with a CPU quota (:mod:`.budget`), a Jetson-class camera against an unconstrained
server tail. Mosquitto, the coordinator and the tail live on the tail's side.

For every head budget and link, every configuration runs the real system — coordinator, tail and head as
processes with the coordinator's ``--cut`` set to it: ``local`` (the whole model on the head), a split cut,
``offload`` with an image codec (``--image``), or ``auto`` — on a paced synthetic clip, and we measure per frame
the time from capture to detections ready. Local sends nothing over the link, so it runs once per budget.

Profiles are measured first, within the head's budget, into caches the nodes then read, so no measured frame
pays for profiling; frames count only once both nodes' profiles are in and the head runs one mode, after a
warm-up. Frames are paced (1.5 × the predicted latency apart, from those profiles) so the numbers are latency,
not queueing. Results go to ``<out>/e2e.json``, ``<out>/e2e.csv`` and ``<out>/e2e.png`` (:mod:`.e2e_report`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from splitinfer.cluster.processes import Processes
from splitinfer.codec.settings import DEFAULT_KEYFRAME_INTERVAL, DEFAULT_QUALITY
from splitinfer.errors import BenchError, ProcessError
from splitinfer.node.models import as_assigned
from splitinfer.node.stats import percentile

from .budget import CpuBudget, budget_unavailable_reason
from .e2e_procs import mode_of, steady_run
from .e2e_report import break_even, link_ms, summarize, write_csv, write_plot
from .netns import NetnsPair, netem_available

__all__ = ["E2EOptions", "LinkSpec", "ModeSpec", "run_e2e"]

BROKER_PORT = 1883
RELAY_PORT = 18830
PACE = 1.5  # frames this many predicted latencies apart: latency, not queueing
MIN_PERIOD_MS = 100.0
SLACK_FRAMES = 60  # beyond warm-up and measured frames: the profile and auto's planning take some
IMAGE_QUALITY = {"jpeg": 90, "webp": 80, "avif": 50}
PRELOAD = ("torch", "ultralytics", "cv2", "splitinfer.cli.app", "splitinfer.head", "splitinfer.splitting.model")


@dataclass(frozen=True)
class LinkSpec:
    """A link: rate in Mbit/s and round-trip time in ms (``20:40``; ``20`` alone: no added delay)."""

    rate_mbit: float
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0.01 <= self.rate_mbit <= 100_000 or not 0.0 <= self.rtt_ms <= 10_000:
            raise BenchError(f"link {self.rate_mbit:g}:{self.rtt_ms:g}: rate must be 0.01..100000 Mbit/s and RTT "
                             "0..10000 ms")

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        rate, _, rtt = text.strip().partition(":")
        try:
            return cls(float(rate), float(rtt or 0.0))
        except ValueError:
            raise BenchError(f"link {text!r}: expected MBIT[:RTT_MS], e.g. 20:40") from None

    @property
    def label(self) -> str:
        return f"{self.rate_mbit:g} Mbit/s, {self.rtt_ms:g} ms RTT"


@dataclass(frozen=True)
class ModeSpec:
    """A configuration: ``local``, a cut (``a``…``d`` or a layer), ``offload:FORMAT[:QUALITY]`` or ``auto``."""

    config: str
    cut: str
    image: str = ""  # offload's FORMAT:QUALITY; empty: the fleet's (E2EOptions.image)

    @classmethod
    def parse(cls, text: str) -> ModeSpec:
        text = text.strip()
        if text.startswith("offload"):
            _, _, image = text.partition(":")
            fmt, _, quality = (image or "jpeg").partition(":")
            if fmt not in IMAGE_QUALITY:
                raise BenchError(f"mode {text!r}: the image codec must be one of {', '.join(IMAGE_QUALITY)}")
            try:
                q = int(quality or IMAGE_QUALITY[fmt])
            except ValueError:
                raise BenchError(f"mode {text!r}: expected offload:FORMAT[:QUALITY], e.g. offload:webp:80") from None
            return cls(f"offload:{fmt}", "offload", f"{fmt}:{q}")
        if text in ("local", "auto", "a", "b", "c", "d") or text.isdigit():
            return cls(text, text)
        raise BenchError(f"mode {text!r}: expected local, a|b|c|d, a layer number, offload:FORMAT or auto")

    @property
    def family(self) -> str:
        return "split" if self.cut not in ("local", "offload", "auto") else self.cut


@dataclass
class E2EOptions:
    model: str
    imgsz: int = 320
    links: List[LinkSpec] = field(default_factory=lambda: [LinkSpec(2, 40), LinkSpec(5, 40), LinkSpec(20, 20),
                                                           LinkSpec(100, 10)])
    budgets: List[Optional[float]] = field(default_factory=lambda: [0.2, 1.0])  # None: unconstrained
    modes: List[str] = field(default_factory=lambda: ["local", "a", "b", "c", "d", "offload:jpeg", "offload:webp",
                                                      "offload:avif", "auto"])
    frames: int = 15
    warmup: int = 3
    bits: int = 4  # at cuts no calibration table covers
    quality: int = DEFAULT_QUALITY  # the calibrated codec's quality (the coordinator's default)
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL  # delta frames between keyframes (the coordinator's default)
    calibrate: bool = True  # the codec's tables for the split cuts, calibrated on the clip's first frames
    threads: int = 1
    image: str = "jpeg:90"  # the fleet's image codec: what auto may offload with
    out: Path = Path("bench/results")
    timeout: float = 300.0


def _py(*args: str) -> List[str]:
    return [sys.executable, *args]


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return round(percentile(sorted(values), q), 2) if values else None


def _err(predicted: Optional[float], measured: Optional[float]) -> Optional[float]:
    return round(100.0 * (predicted - measured) / measured, 1) if predicted and measured else None


class _Bench:
    def __init__(self, opts: E2EOptions, pair: NetnsPair, work: Path, say: Callable[[str], None]) -> None:
        self.opts, self.pair, self.work, self.say = opts, pair, work, say
        self.procs = Processes(work, append=True)  # one configuration's processes
        self.services = Processes(work, append=True)  # the broker (whole bench), the relay (one link)
        self.folder, self.name, self.digest = as_assigned(opts.model)
        self.tables: List[Path] = []
        self.head_url = f"mqtt://{pair.tail_ip}:{BROKER_PORT}"
        self.tail_url = self.head_url
        self.tail_profile: Dict[str, Any] = {}
        self.head_profiles: Dict[str, Dict[str, Any]] = {}  # per image format, for the current budget
        self.budget: Optional[CpuBudget] = None
        self.count = 0
        self.notes: List[str] = []

    # ---- services -----------------------------------------------------------------------------------

    def start_broker(self) -> None:
        from splitinfer.broker.local import find_mosquitto, local_mosquitto_conf

        binary = find_mosquitto()
        if binary is None:
            raise BenchError("bench e2e needs Mosquitto (apt install mosquitto)")
        conf = self.work / "mosquitto.conf"
        conf.write_text(local_mosquitto_conf(BROKER_PORT, host="0.0.0.0"))
        self.services.start("mosquitto", self.pair.exec("tail", binary, "-c", str(conf)), new_session=True)
        time.sleep(0.5)
        self.services.check()

    def prepare_models(self, modes: Sequence[ModeSpec]) -> None:
        """The nodes' model folder: the model and, for the split cuts (a–d for auto), the codec's calibration
        tables, calibrated on the synthetic clip's first frames as ``run --local`` does; none (the version-1 codec
        at ``bits``, with a note) for a model that detects nothing to calibrate on."""
        folder = self.work / "models"
        folder.mkdir(exist_ok=True)
        if self.folder:  # a hard link (the nodes refuse a symbolic one out of their folder), else a copy
            try:
                os.link(Path(self.folder) / self.name, folder / self.name)
            except OSError:
                shutil.copy2(Path(self.folder) / self.name, folder / self.name)
        self.folder = str(folder)
        cuts = list(dict.fromkeys(c for m in modes for c in (("a", "b", "c", "d") if m.family == "auto" else
                                                           (m.cut,) if m.family == "split" else ())))
        if not self.opts.calibrate or not cuts:
            return
        from splitinfer.errors import ModelError
        from splitinfer.head.sources import sample_frames
        from splitinfer.splitting import load_model
        from splitinfer.splitting.sensitivity import calibrate_files

        model = load_model(self.opts.model)
        try:
            made = calibrate_files(model, cuts, sample_frames("synthetic", 8), folder=folder,
                                   stem=Path(self.name).stem, imgsz=self.opts.imgsz)
        except ModelError as exc:
            self.notes.append(f"the codec is not calibrated, so split sends version-1 features at {self.opts.bits} "
                              f"bits: {exc}")
            return
        self.tables = [path for _, path in made]
        self.notes.append(f"codec calibrated on the clip's first 8 frames at cuts {', '.join(cuts)}: quality "
                          f"{self.opts.quality} there, version 1 at {self.opts.bits} bits at other cuts")

    def codec_args(self) -> List[str]:
        """The codec as the coordinator assigns it (the profiles are measured with exactly these)."""
        o = self.opts
        return ["--bits", str(o.bits), "--quality", str(o.quality), "--keyframe-interval", str(o.keyframe_interval),
                *[arg for t in self.tables for arg in ("--table", str(t))]]

    def set_link(self, link: LinkSpec) -> None:
        """Shape the veth; (re)start the delay relay the head connects through (none without an RTT)."""
        self.pair.shape(link.rate_mbit)
        if "relay" in self.services:
            self.services.stop(["relay"])
        self.head_url = f"mqtt://{self.pair.tail_ip}:{BROKER_PORT}"
        if link.rtt_ms > 0:
            offset = self._log_size("relay")
            self.services.start("relay", self.pair.exec(
                "head", *_py("-m", "splitinfer.bench.delay", "--listen", f"127.0.0.1:{RELAY_PORT}",
                             "--to", f"{self.pair.tail_ip}:{BROKER_PORT}", "--delay-ms", f"{link.rtt_ms / 2:g}")),
                new_session=True)
            self.services.wait_for_line("relay", "ready", 30, offset=offset)
            self.head_url = f"mqtt://127.0.0.1:{RELAY_PORT}"

    def _log_size(self, name: str) -> int:
        log = self.procs.log(name)
        return log.stat().st_size if log.exists() else 0

    def cache(self, side: str) -> str:
        budget = "tail" if side == "tail" else f"head-{self.budget.cores:g}" if self.budget else "head-full"
        return str(self.work / "cache" / budget)

    def _head_command(self, argv: List[str], *, netns: bool) -> List[str]:
        wrap: Callable[[List[str]], List[str]] = (lambda a: self.pair.exec("head", *a)) if netns else list
        if self.budget is None:
            return wrap(argv)
        return self.budget.command(argv, preload=PRELOAD, wrap=wrap)

    # ---- profiles ------------------------------------------------------------------------------------

    def warm_profiles(self, images: Sequence[str]) -> None:
        """The tail's profile (once) and the head's for each image codec, measured as the nodes measure them
        (the head's within its budget) into the caches the nodes will read."""
        o = self.opts
        common = ["--model", o.model, "--imgsz", str(o.imgsz), "--threads", str(o.threads)]
        if not self.tail_profile:
            self.tail_profile = self._profile("tail", _py("-m", "splitinfer.bench.e2e_procs", "profile", "--role",
                                                          "tail", *common), self.cache("tail"))
        self.head_profiles = {}
        for image in dict.fromkeys(images):
            argv = _py("-m", "splitinfer.bench.e2e_procs", "profile", "--role", "head", *common, *self.codec_args(),
                       "--image", image)
            self.head_profiles[image.split(":")[0]] = self._profile("profile", self._head_command(argv, netns=False),
                                                                     self.cache("head"))

    def _profile(self, name: str, argv: List[str], cache: str) -> Dict[str, Any]:
        out = self.work / f"{name}-{self.count}.json"
        self.count += 1
        with open(out, "wb") as fh:
            proc = self.procs.start(name, argv, stdout=fh.fileno(), env={"SPLITINFER_CACHE": cache})
            try:
                proc.wait(self.opts.timeout)
            except subprocess.TimeoutExpired:
                self.procs.stop([name])
                raise ProcessError(f"measuring the {name} profile took over {self.opts.timeout:.0f} s; see "
                                   f"{self.procs.log(name)}", name=name) from None
        if proc.returncode != 0:
            raise self.procs.failure(name, "failed")
        data: Dict[str, Any] = json.loads(out.read_text().strip().splitlines()[-1])
        return data

    def predicted(self, mode: ModeSpec, link: LinkSpec) -> float:
        """The cost model's latency for ``mode`` from the warmed profiles (for pacing only)."""
        from splitinfer.coordinator.cost import Link, best_latency, cut_costs, mode_costs, resolve_cut

        fleet_fmt = self.opts.image.split(":")[0]
        fmt = (mode.image or self.opts.image).split(":")[0]
        head = self.head_profiles.get(fmt) or self.head_profiles.get(fleet_fmt) or {}
        wire = Link(link.rate_mbit * 1e6, link.rtt_ms)
        try:
            modes = mode_costs(head, self.tail_profile, wire, offload=fmt)
            cuts = cut_costs(head, self.tail_profile, wire)
            if mode.family in ("local", "offload"):
                return next(c.latency_ms for c in modes if c.mode == mode.family)
            if mode.family == "auto":  # paced for what it will choose (its fallback's frames may be dropped)
                return best_latency(cuts + modes).latency_ms
            return next(c.latency_ms for c in cuts if c.cut == resolve_cut(head, mode.cut))
        except (KeyError, StopIteration, TypeError, ValueError):
            return 1000.0  # no prediction: pace slowly

    # ---- one configuration ---------------------------------------------------------------------------

    def run(self, mode: ModeSpec, link: LinkSpec) -> Dict[str, Any]:
        o = self.opts
        self.count += 1
        fleet = f"e2e-{os.getpid()}-{self.count}"
        predicted = self.predicted(mode, link)
        fps = round(1000.0 / max(PACE * predicted, MIN_PERIOD_MS), 3)
        cap = o.warmup + o.frames + SLACK_FRAMES
        image = mode.image or o.image
        done, output = self.work / f"{fleet}.done", self.work / f"{fleet}.json"
        tail_common = ["--broker", self.tail_url, "--fleet", fleet]
        cache_before = self._cached_files()
        self.procs.start("coordinator", self.pair.exec("tail", *_py(
            "-m", "splitinfer", "coordinator", *tail_common, "--model", self.name, "--sha256", self.digest,
            "--inventory", "tail-1=tail", "--inventory", "head-1=head", "--imgsz", str(o.imgsz), "--cut", mode.cut,
            *self.codec_args(), "--tail-batch", "1", "--max-wait-ms", "0", "--offload", "head-1",
            "--image", image)), new_session=True)
        self.procs.start("tail", self.pair.exec("tail", *_py(
            "-m", "splitinfer", "node", "tail", *tail_common, "--id", "tail-1", "--model-dir", self.folder,
            "--threads", str(o.threads))), new_session=True, env={"SPLITINFER_CACHE": self.cache("tail")})
        try:
            with open(output, "wb") as fh:  # the child keeps its own handle
                collector = self.procs.start("collect", self.pair.exec("tail", *_py(
                    "-m", "splitinfer.bench.e2e_procs", "collect", *tail_common, "--frames", str(o.frames),
                    "--warmup", str(o.warmup), "--done-file", str(done), "--timeout", str(o.timeout))),
                    stdout=fh.fileno(), new_session=True)
            # all at once: a head up before its tail runs locally meanwhile; frames count only later (see _row)
            head = _py("-m", "splitinfer", "node", "head", "--broker", self.head_url, "--fleet", fleet, "--id",
                       "head-1", "--model-dir", self.folder, "--source", f"synthetic:{cap}", "--fps", str(fps),
                       "--frames", str(cap), "--threads", str(o.threads), "--allow-offload", "--probe-every", "0")
            self.procs.start("head", self._head_command(head, netns=True), new_session=True,
                             env={"SPLITINFER_CACHE": self.cache("head")})
            self._wait(collector, done)
        finally:
            self.procs.stop(["head"])  # first, so its goodbye reaches a live broker and tail quickly
            self.procs.stop()
        data = json.loads(output.read_text().strip().splitlines()[-1])
        row = self._row(mode, link, fps, data)
        if self._cached_files() != cache_before:
            row["notes"].append("a node measured a profile during this run (its cache was not warm)")
        return row

    def _wait(self, collector: subprocess.Popen, done: Path) -> None:
        """Until the collector has its frames; the head finishing first (its frames ran out) is fine."""
        while collector.poll() is None:
            head = self.procs["head"].poll()
            if head is not None and not done.exists():
                if head != 0:
                    raise self.procs.failure("head", "failed")
                done.touch()
            self.procs.check(["coordinator", "tail"])
            time.sleep(0.2)

    def _cached_files(self) -> List[str]:
        return sorted(str(p) for p in (self.work / "cache").rglob("*.json"))

    def _row(self, mode: ModeSpec, link: LinkSpec, fps: float, data: Dict[str, Any]) -> Dict[str, Any]:
        o = self.opts
        records = data["records"]
        want = tuple(data["planned"]) if data.get("planned") else None
        since = data["since"] if want is not None else float("inf")
        steady = steady_run(records, since, want)[o.warmup:]
        local = mode.family == "local"
        row: Dict[str, Any] = {
            "budget_cores": self.budget.cores if self.budget else None,
            "link_mbit": None if local else link.rate_mbit, "rtt_ms": None if local else link.rtt_ms,
            "measured_on": link.label, "config": mode.config, "mode": None, "cut": None, "image": None,
            "frames": len(steady), "p50_ms": None, "p99_ms": None, "fps": None, "paced_fps": fps,
            "bytes_per_frame": 0, "predicted_ms": None, "predicted_err_pct": None, "predicted_profile_ms": None,
            "predicted_profile_err_pct": None, "reported_p50_ms": None, "other_mode_frames": 0, "reason": "",
            "prediction": {},
            "stages_p50_ms": {}, "notes": [],
        }
        if not steady:
            plan = "no plan with a prediction" if want is None else f"planned {want[0]} {want[1] or ''}".strip()
            row["notes"].append(f"no frames in the planned mode ({plan}; {len(records)} detections in all); see "
                                f"the logs in {self.work}")
            return row
        final = mode_of(steady[-1])
        row.update(mode=final[0], cut=final[1], image=(mode.image or o.image).split(":")[0]
                   if final[0] == "offload" else None)
        e2e = [r["timings"].get("e2e_ms", 0.0) for r in steady]
        reported = [r["timings"]["reported_e2e_ms"] for r in steady if r["timings"].get("reported_e2e_ms")]
        row.update(p50_ms=_pct(e2e, 0.5), p99_ms=_pct(e2e, 0.99), reported_p50_ms=_pct(reported, 0.5),
                   bytes_per_frame=round(sum(r["payload_bytes"] for r in steady) / len(steady)),
                   other_mode_frames=sum(1 for r in records if float(r.get("timestamp") or 0) >= since and
                                         mode_of(r) != final))
        row["stages_p50_ms"] = {k: _pct([r["timings"][k] for r in steady if k in r["timings"]], 0.5)
                                for k in steady[0]["timings"]}
        row["fps"] = _sustainable_fps(row, link)
        self._predictions(row, data["assignments"], final)
        return row

    @staticmethod
    def _predictions(row: Dict[str, Any], assignments: List[Dict[str, Any]], final: Any) -> None:
        """The last assignment's prediction for the mode that ran (calibrated), and the first (profiles only)."""
        def matches(a: Dict[str, Any]) -> bool:
            p = a.get("prediction") or {}
            return a.get("predicted_ms") is not None and (p.get("mode", "split"), p.get("cut") or None) == (
                final[0], final[1] or None)

        ok = [a for a in assignments if matches(a)]
        if not ok:
            return
        row.update(predicted_ms=ok[-1]["predicted_ms"], predicted_profile_ms=ok[0]["predicted_ms"],
                   reason=ok[-1].get("reason", ""), prediction=ok[-1].get("prediction") or {})
        row["predicted_err_pct"] = _err(row["predicted_ms"], row["p50_ms"])
        row["predicted_profile_err_pct"] = _err(row["predicted_profile_ms"], row["p50_ms"])

    def close(self) -> None:
        self.procs.stop()
        self.services.stop()


def _sustainable_fps(row: Dict[str, Any], link: LinkSpec) -> Optional[float]:
    """Frames per second the pipeline sustains: one over its slowest stage (head, link, tail run concurrently)."""
    s = {k: v or 0.0 for k, v in row["stages_p50_ms"].items()}
    head = s.get("preprocess_ms", 0.0) + s.get("head_ms", 0.0) + s.get("encode_ms", 0.0)
    if row["mode"] == "local":
        head += s.get("postprocess_ms", 0.0)
        stages = [head]
    else:
        tail = s.get("decode_ms", 0.0) + s.get("tail_ms", 0.0) + s.get("postprocess_ms", 0.0)
        stages = [head, tail, link_ms(row["bytes_per_frame"], link.rate_mbit)]
    slowest = max(stages)
    return round(1000.0 / slowest, 2) if slowest > 0 else None


def check_options(opts: E2EOptions) -> List[ModeSpec]:
    """The configurations to run (unavailable image codecs dropped, with a note later); BenchError for options
    that cannot run here."""
    from splitinfer.codec.frames import available

    if not opts.links or not opts.budgets or not opts.modes:
        raise BenchError("bench e2e: --links, --budgets and --modes each need at least one value")
    if any(b is not None for b in opts.budgets):
        reason = budget_unavailable_reason()
        if reason:
            raise BenchError(f"bench e2e: a head CPU budget cannot be made here: {reason}. Run as root on a "
                             "machine with the cgroup cpu controller, or pass --budgets none to measure with an "
                             "unconstrained head")
    ModeSpec.parse(opts.image if opts.image.startswith("offload") else f"offload:{opts.image}")
    modes = [ModeSpec.parse(m) for m in opts.modes]
    return [m for m in modes if not m.image or available(m.image.split(":")[0])]


def run_e2e(opts: E2EOptions, *, say: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Run every configuration at every budget and link; write ``e2e.json``, ``e2e.csv`` and ``e2e.png`` under
    ``opts.out``."""
    modes = check_options(opts)
    notes = [f"{m} dropped: its image codec is not available here" for m in opts.modes
             if ModeSpec.parse(m) not in modes]
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="splitinfer-e2e-"))
    rows: List[Dict[str, Any]] = []
    with NetnsPair.create() as pair:
        notes.append("netem is available; delay is still added by the relay, for the same method everywhere"
                     if netem_available(pair) else
                     "netem is not in this kernel: delay is added by a userspace relay in the head's namespace "
                     "(splitinfer.bench.delay), rate by tbf")
        bench = _Bench(opts, pair, work, say)
        try:
            bench.start_broker()
            say("preparing the model folder (calibrating the codec)")
            bench.prepare_models(modes)
            for budget in opts.budgets:
                with contextlib.ExitStack() as stack:
                    bench.budget = stack.enter_context(CpuBudget.create(budget)) if budget is not None else None
                    rows += _one_budget(bench, modes, say)
        finally:
            bench.close()
    if not any(r["p50_ms"] for r in rows):
        raise BenchError(f"bench e2e: no configuration produced detections; see the logs in {work}")
    summary = summarize(rows, auto_image=opts.image)
    result = {
        "model": opts.model, "imgsz": opts.imgsz, "bits": opts.bits, "quality": opts.quality,
        "calibrated": [p.name for p in bench.tables], "frames": opts.frames,
        "threads": opts.threads, "image": opts.image,
        "options": {k: str(v) for k, v in asdict(opts).items()}, "rows": rows, "summary": summary,
        "break_even": break_even(rows, summary), "notes": notes + bench.notes,
        "wall_s": round(time.monotonic() - started, 1), "logs": str(work),
    }
    _write(opts.out, result)
    return result


def _one_budget(bench: _Bench, modes: List[ModeSpec], say: Callable[[str], None]) -> List[Dict[str, Any]]:
    o = bench.opts
    where = bench.budget.describe() if bench.budget else "unconstrained"
    say(f"head budget: {where}; measuring profiles")
    bench.warm_profiles([o.image] + [m.image for m in modes if m.image])
    rows = []
    for k, link in enumerate(o.links):
        bench.set_link(link)
        for mode in modes:
            if mode.family == "local" and k > 0:
                continue  # local does not use the link: once per budget
            say(f"{where.split(' (')[0]}, {link.label}: {mode.config}")
            try:
                rows.append(bench.run(mode, link))
            except ProcessError as exc:  # one configuration failed: say so in its row, go on with the others
                rows.append({"budget_cores": bench.budget.cores if bench.budget else None,
                             "link_mbit": link.rate_mbit, "rtt_ms": link.rtt_ms, "config": mode.config,
                             "p50_ms": None, "frames": 0, "notes": [f"failed: {exc}"]})
            say(_brief(rows[-1]))
    return rows


def _brief(row: Dict[str, Any]) -> str:
    if not row.get("p50_ms"):
        return f"  → {row['config']}: no measurement ({'; '.join(row.get('notes', []))})"
    ran = row["mode"] + (f" {row['cut']}" if row.get("cut") else "") + (f" {row['image']}" if row.get("image") else "")
    return (f"  → {row['config']} ({ran}): p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, predicted "
            f"{row['predicted_ms']}, {row['bytes_per_frame']} B/frame, {row['frames']} frames")


def _write(out: Path, result: Dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(result, indent=2))
    write_csv(out / "e2e.csv", result["rows"])
    codec = (f"calibrated codec at quality {result['quality']}" if result.get("calibrated") else
             f"{result['bits']}-bit features")
    title = (f"{Path(result['model']).name} at {result['imgsz']}, {codec}, tail {result['threads']} CPU "
             f"thread(s), unconstrained; auto offloads with {result['image']}")
    write_plot(out / "e2e.png", result["rows"], result["summary"], title)
