"""``splitctl bench e2e``: end-to-end latency of split inference over shaped links, against two baselines.

A head and a tail run in separate network namespaces joined by a veth pair (:mod:`.netns`), shaped with tbf to
each link rate; Mosquitto, the coordinator and the tail live on the tail's side. For every link and every cut
(the presets and ``auto``) the real node programs run a paced synthetic clip, and we measure, per frame, the
time from capture to detections ready. Two baselines are measured the same way: the whole model on the head
(no network) and JPEG q90 frames sent to a tail that runs the whole model (:mod:`.e2e_procs`).

Frames are paced (1.4 × the predicted latency apart) so the numbers are latency, not queueing. Results go to
``<out>/e2e.json``, ``<out>/e2e.csv`` and ``<out>/e2e.png``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from splitinfer.cluster.processes import Processes
from splitinfer.errors import BenchError
from splitinfer.node.models import as_assigned
from splitinfer.node.stats import percentile

from .netns import NetnsPair, netem_available

__all__ = ["E2EOptions", "run_e2e", "summarize"]

CSV_COLUMNS = ("link_mbit", "config", "cut", "frames", "p50_ms", "p99_ms", "predicted_ms", "predicted_err_pct",
               "predicted_profile_ms", "predicted_profile_err_pct", "bytes_per_frame", "fps", "capacity_fps",
               "reason")
BROKER_PORT = 1883
NOISE = 0.10  # run-to-run differences on a shared 2-core machine; a "win" must be larger than this


@dataclass
class E2EOptions:
    model: str
    imgsz: int = 320
    links: List[float] = field(default_factory=lambda: [5.0, 20.0, 100.0, 1000.0])
    cuts: List[str] = field(default_factory=lambda: ["a", "b", "c", "d", "auto"])
    frames: int = 20
    warmup: int = 3
    bits: int = 4
    threads: int = 1
    baselines: bool = True
    out: Path = Path("bench/results")
    timeout: float = 180.0


def child_env() -> Dict[str, str]:
    from splitinfer.broker.local import child_env as env

    return env()


def _py(*args: str) -> List[str]:
    return [sys.executable, *args]


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return round(percentile(sorted(values), q), 2) if values else None


class _Bench:
    def __init__(self, opts: E2EOptions, pair: NetnsPair, work: Path, say: Callable[[str], None]) -> None:
        self.opts, self.pair, self.work, self.say = opts, pair, work, say
        self.url = f"mqtt://{pair.tail_ip}:{BROKER_PORT}"
        self.procs = Processes(work, append=True)  # one configuration's processes
        self.services = Processes(work, append=True)  # the broker: for the whole bench
        self.head_profile: Dict[str, Any] = {}
        self.tail_profile: Dict[str, Any] = {}
        self.jpeg_bytes = 0.0

    # ---- processes -----------------------------------------------------------------------------------

    def spawn(self, side: str, name: str, argv: List[str], stdout: Any = None) -> subprocess.Popen:
        return self.procs.start(name, self.pair.exec(side, *argv), stdout=stdout, new_session=True)

    def stop_all(self) -> None:
        self.procs.stop()

    def close(self) -> None:
        self.procs.stop()
        self.services.stop()

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

    # ---- predictions (for pacing) --------------------------------------------------------------------

    def measure_profiles(self) -> None:
        """The same cached profiles the nodes will load (same model, codec, batch and thread count)."""
        import torch

        import splitinfer
        from splitinfer.codec import Codec, simd
        from splitinfer.splitting.preprocess import letterboxed_uint8
        from splitinfer.splitting.profile import calibration_images, head_profile, tail_profile

        torch.set_num_threads(self.opts.threads)
        model = splitinfer.load_model(self.opts.model)
        from splitinfer.codec.settings import DEFAULT_KEYFRAME_INTERVAL, DEFAULT_QUALITY

        # what the coordinator assigns by default, so the nodes find this profile in the cache
        codec: Dict[str, Any] = {"bits": self.opts.bits, "quality": DEFAULT_QUALITY,
                                 "keyframe_interval": DEFAULT_KEYFRAME_INTERVAL}
        self.head_profile = head_profile(model, name=self.opts.model, imgsz=self.opts.imgsz, batch=1, codec=codec,
                                         make_codec=lambda cut: Codec(**codec), codec_path=simd.status())
        self.tail_profile = tail_profile(model, name=self.opts.model, imgsz=self.opts.imgsz, batch=1)
        import cv2

        sizes = [len(cv2.imencode(".jpg", letterboxed_uint8(im, self.opts.imgsz),
                                  [int(cv2.IMWRITE_JPEG_QUALITY), 90])[1]) for im in calibration_images()]
        self.jpeg_bytes = sum(sizes) / len(sizes)

    def predicted(self, cut: str, rate_mbit: float) -> float:
        from splitinfer.coordinator.cost import Link, best_latency, cut_costs, resolve_cut

        costs = cut_costs(self.head_profile, self.tail_profile, Link(rate_mbit * 1e6, 0.2))
        if cut == "auto":
            fallback = next(c for c in costs if c.cut == resolve_cut(self.head_profile, "b"))
            return max(best_latency(costs).latency_ms, fallback.latency_ms)
        return next(c.latency_ms for c in costs if c.cut == resolve_cut(self.head_profile, cut))

    def whole_ms(self) -> float:
        return float(self.head_profile.get("preprocess_ms", 0.0) + sum(self.tail_profile["layer_ms"]) +
                     self.tail_profile.get("postprocess_ms", 0.0))

    @staticmethod
    def fps_for(latency_ms: float) -> float:
        return round(1000.0 / max(1.4 * latency_ms, 100.0), 3)

    # ---- one configuration ---------------------------------------------------------------------------

    def run_split(self, rate: float, cut: str) -> Dict[str, Any]:
        o = self.opts
        fleet = f"e2e-{int(rate)}-{cut}-{os.getpid()}"
        total = o.frames + o.warmup + (6 if cut == "auto" else 0)
        fps = self.fps_for(self.predicted(cut, rate))
        common = ["--broker", self.url, "--fleet", fleet]
        done = self.work / f"{fleet}.done"
        folder, name, digest = as_assigned(o.model)
        self.spawn("tail", "coordinator", _py("-m", "splitinfer", "coordinator", *common, "--model", name,
                                              "--sha256", digest, "--inventory", "tail-1=tail",
                                              "--inventory", "head-1=head",
                                              "--imgsz", str(o.imgsz), "--cut", cut, "--bits", str(o.bits),
                                              "--tail-batch", "1", "--max-wait-ms", "0"))
        tail_log = self.procs.log("tail")
        offset = tail_log.stat().st_size if tail_log.exists() else 0
        self.spawn("tail", "tail", _py("-m", "splitinfer", "node", "tail", *common, "--id", "tail-1",
                                       "--model-dir", folder,
                                              "--threads", str(o.threads)))
        # a head that comes up before any tail is live gets no route, and its first frames are (rightly) dropped
        self.procs.wait_for_line("tail", ": assignment ", o.timeout, offset=offset)
        collector = self.spawn("tail", "collect", _py("-m", "splitinfer.bench.e2e_procs", "collect", *common,
                                                      "--frames", str(total), "--done-file", str(done),
                                                      "--timeout", str(o.timeout)), stdout=subprocess.PIPE)
        self.spawn("head", "head", _py("-m", "splitinfer", "node", "head", *common, "--id", "head-1",
                                       "--model-dir", folder,
                                              "--source", f"synthetic:{total}", "--fps", str(fps),
                                              "--frames", str(total), "--threads", str(o.threads)))
        try:
            self.procs.wait("head", o.timeout)
            done.touch()
            out, _ = collector.communicate(timeout=o.timeout)
        finally:
            self.stop_all()
        data = json.loads(out.decode().strip().splitlines()[-1])
        return self._split_row(rate, cut, fps, data)

    def _split_row(self, rate: float, cut: str, fps: float, data: Dict[str, Any]) -> Dict[str, Any]:
        records = data["records"]
        if not records:
            raise BenchError(f"no detections for cut {cut} at {rate} Mbit/s; see {self.work}")
        final = records[-1]["cut"]
        steady = [r for r in records if r["cut"] == final][self.opts.warmup:]
        assignment = data["assignments"][-1] if data["assignments"] else {}
        row = _row(rate, cut, final, steady, fps, lambda t: (t.get("preprocess_ms", 0) + t.get("head_ms", 0) +
                                                              t.get("encode_ms", 0), t.get("transit_ms", 0),
                                                              t.get("decode_ms", 0) + t.get("tail_ms", 0) +
                                                              t.get("postprocess_ms", 0)))
        row["predicted_ms"] = assignment.get("predicted_ms")
        row["reason"] = assignment.get("reason", "")
        row["prediction"] = assignment.get("prediction", {})
        # the first prediction for this cut, from the profiles alone (before the nodes reported a calibration)
        first: Dict[str, Any] = next((a for a in data["assignments"] if a.get("predicted_ms") is not None
                                      and (a.get("prediction") or {}).get("cut") == final), {})
        row["predicted_profile_ms"] = first.get("predicted_ms")
        if row["p50_ms"]:
            row["predicted_err_pct"] = _err(row["predicted_ms"], row["p50_ms"])
            row["predicted_profile_err_pct"] = _err(row["predicted_profile_ms"], row["p50_ms"])
        return row

    def run_jpeg(self, rate: float) -> Dict[str, Any]:
        o = self.opts
        total = o.frames + o.warmup
        transfer = (self.jpeg_bytes * 1.04 * 8) / (rate * 1e6) * 1000.0
        fps = self.fps_for(self.whole_ms() + transfer + 3.0)
        common = ["--broker", self.url, "--model", o.model, "--imgsz", str(o.imgsz), "--frames", str(total),
                  "--threads", str(o.threads), "--fps", str(fps), "--source", f"synthetic:{total}"]
        tail = self.spawn("tail", "jpeg-tail", _py("-m", "splitinfer.bench.e2e_procs", "jpeg-tail", *common,
                                                   "--timeout", str(o.timeout)), stdout=subprocess.PIPE)
        try:
            assert tail.stdout is not None
            tail.stdout.readline()  # {"ready": true}: model loaded, subscribed
            self.spawn("head", "jpeg-head", _py("-m", "splitinfer.bench.e2e_procs", "jpeg-head", *common))
            self.procs.wait("jpeg-head", o.timeout)
            out, _ = tail.communicate(timeout=o.timeout)
        finally:
            self.stop_all()
        records = json.loads(out.decode().strip().splitlines()[-1])["records"][o.warmup:]
        return _row(rate, "jpeg", None, records, fps, lambda t: (0.0, t.get("transit_ms", 0),
                                                                 t.get("decode_ms", 0) + t.get("tail_ms", 0)))

    def run_whole(self) -> Dict[str, Any]:
        o = self.opts
        total = o.frames + o.warmup
        fps = self.fps_for(self.whole_ms())
        proc = self.spawn("head", "whole", _py("-m", "splitinfer.bench.e2e_procs", "whole", "--model", o.model,
                                               "--imgsz", str(o.imgsz), "--frames", str(total), "--fps", str(fps),
                                               "--threads", str(o.threads), "--source", f"synthetic:{total}"),
                          stdout=subprocess.PIPE)
        try:
            out, _ = proc.communicate(timeout=o.timeout)
        finally:
            self.stop_all()
        records = json.loads(out.decode().strip().splitlines()[-1])["records"][o.warmup:]
        row = _row(None, "whole-on-head", None, records, fps, lambda t: (t.get("e2e_ms", 0), 0.0, 0.0))
        row["predicted_ms"] = round(self.whole_ms(), 2)
        if row["p50_ms"]:
            row["predicted_err_pct"] = round(100.0 * (row["predicted_ms"] - row["p50_ms"]) / row["p50_ms"], 1)
        return row


def _err(predicted: Optional[float], measured: float) -> Optional[float]:
    return round(100.0 * (predicted - measured) / measured, 1) if predicted else None


def _row(rate: Optional[float], config: str, cut: Optional[int], records: List[Dict[str, Any]], fps: float,
         stages: Callable[[Dict[str, float]], Any]) -> Dict[str, Any]:
    e2e = [r["timings"]["e2e_ms"] for r in records]
    per_stage = list(zip(*[stages(r["timings"]) for r in records])) if records else []
    slowest = max((_pct(list(s), 0.5) or 0.0) for s in per_stage) if per_stage else 0.0
    return {
        "link_mbit": rate, "config": config, "cut": cut, "frames": len(records),
        "p50_ms": _pct(e2e, 0.5), "p99_ms": _pct(e2e, 0.99), "predicted_ms": None, "predicted_err_pct": None,
        "bytes_per_frame": round(sum(r["payload_bytes"] for r in records) / len(records)) if records else 0,
        "fps": fps, "capacity_fps": round(1000.0 / slowest, 2) if slowest else None, "reason": "",
        "stages_p50_ms": {k: _pct([r["timings"][k] for r in records if k in r["timings"]], 0.5)
                          for k in (records[0]["timings"] if records else {})},
    }


def summarize(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per link: the best measured cut, auto's cut and how far it is from the best, its prediction error, the
    baselines, and whether split beats both."""
    whole = next((r for r in rows if r["config"] == "whole-on-head"), None)
    out = []
    for rate in sorted({r["link_mbit"] for r in rows if r["link_mbit"] is not None}):
        here = [r for r in rows if r["link_mbit"] == rate and r["p50_ms"] is not None]
        splits = [r for r in here if r["config"] not in ("jpeg", "whole-on-head")]
        if not splits:
            continue
        best = min(splits, key=lambda r: r["p50_ms"])
        auto = next((r for r in here if r["config"] == "auto"), None)
        jpeg = next((r for r in here if r["config"] == "jpeg"), None)
        baselines = [b["p50_ms"] for b in (jpeg, whole) if b is not None and b["p50_ms"] is not None]
        out.append({
            "link_mbit": rate, "best_config": best["config"], "best_cut": best["cut"], "best_p50_ms": best["p50_ms"],
            "auto_cut": auto["cut"] if auto else None, "auto_p50_ms": auto["p50_ms"] if auto else None,
            "auto_vs_best_pct": round(100.0 * (auto["p50_ms"] - best["p50_ms"]) / best["p50_ms"], 1) if auto else None,
            "auto_predicted_ms": auto["predicted_ms"] if auto else None,
            "auto_predicted_err_pct": auto["predicted_err_pct"] if auto else None,
            "auto_predicted_profile_err_pct": auto.get("predicted_profile_err_pct") if auto else None,
            "jpeg_p50_ms": jpeg["p50_ms"] if jpeg else None, "whole_on_head_p50_ms": whole["p50_ms"] if whole else None,
            "split_beats_both": bool(baselines) and best["p50_ms"] < (1.0 - NOISE) * min(baselines),
            "verdict": _verdict(best["p50_ms"], min(baselines) if baselines else None),
        })
    return out


def _verdict(split_ms: float, baseline_ms: Optional[float]) -> str:
    if baseline_ms is None:
        return "no baseline measured"
    if split_ms < (1.0 - NOISE) * baseline_ms:
        return "split beats both baselines"
    if split_ms <= (1.0 + NOISE) * baseline_ms:
        return f"split and the better baseline are within {NOISE:.0%} (run-to-run noise here): no clear winner"
    return "split does not beat the baselines"


def _plot(rows: List[Dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = sorted({r["link_mbit"] for r in rows if r["link_mbit"] is not None})
    configs = [c for c in dict.fromkeys(r["config"] for r in rows if r["link_mbit"] is not None)]
    whole = next((r for r in rows if r["config"] == "whole-on-head"), None)
    width = 0.8 / max(1, len(configs))
    fig, ax = plt.subplots(figsize=(10, 5))
    for k, config in enumerate(configs):
        xs, p50, p99 = [], [], []
        for i, rate in enumerate(links):
            r = next((r for r in rows if r["link_mbit"] == rate and r["config"] == config), None)
            if r and r["p50_ms"]:
                xs.append(i + (k - (len(configs) - 1) / 2) * width)
                p50.append(r["p50_ms"])
                p99.append(max(0.0, (r["p99_ms"] or r["p50_ms"]) - r["p50_ms"]))
        ax.bar(xs, p50, width, yerr=[[0] * len(p99), p99], capsize=2, label=config)
    if whole and whole["p50_ms"]:
        ax.axhline(whole["p50_ms"], color="black", linestyle="--", linewidth=1, label="whole model on head")
    ax.set_xticks(range(len(links)))
    ax.set_xticklabels([f"{r:g} Mbit/s" for r in links])
    ax.set_ylabel("end-to-end latency, ms (p50; whisker to p99)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_e2e(opts: E2EOptions, *, say: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Run every configuration; write ``e2e.json``, ``e2e.csv`` and ``e2e.png`` under ``opts.out``."""
    notes = []
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="splitinfer-e2e-"))
    rows: List[Dict[str, Any]] = []
    with NetnsPair.create() as pair:
        if netem_available(pair):
            notes.append("netem is available, but this bench shapes rate only (tbf)")
        else:
            notes.append("netem is not in this kernel: no added delay or loss; links are rate-limited with tbf only "
                         "(RTT is the veth's, ~0.1 ms)")
        bench = _Bench(opts, pair, work, say)
        try:
            bench.start_broker()
            say("measuring profiles (cached after the first run)")
            bench.measure_profiles()
            if opts.baselines:
                say("baseline: whole model on the head")
                rows.append(bench.run_whole())
            for rate in opts.links:
                pair.shape(rate)
                for cut in opts.cuts:
                    say(f"{rate:g} Mbit/s, cut {cut}")
                    rows.append(bench.run_split(rate, cut))
                    say(_brief(rows[-1]))
                if opts.baselines:
                    say(f"{rate:g} Mbit/s, JPEG q90 to the tail")
                    rows.append(bench.run_jpeg(rate))
                    say(_brief(rows[-1]))
        finally:
            bench.close()
    result = {
        "model": opts.model, "imgsz": opts.imgsz, "bits": opts.bits, "frames": opts.frames,
        "threads": opts.threads, "options": {k: str(v) for k, v in asdict(opts).items()},
        "rows": rows, "summary": summarize(rows), "notes": notes, "wall_s": round(time.monotonic() - started, 1),
        "logs": str(work),
    }
    _write(opts.out, result)
    return result


def _brief(row: Dict[str, Any]) -> str:
    return (f"  → cut {row['cut']}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, predicted {row['predicted_ms']}"
            f", {row['bytes_per_frame']} B/frame")


def _write(out: Path, result: Dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(result, indent=2))
    with open(out / "e2e.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in result["rows"]:
            writer.writerow([r.get(c) for c in CSV_COLUMNS])
    title = (f"{Path(result['model']).name} at {result['imgsz']}, {result['bits']}-bit codec, head and tail "
             f"{result['threads']} CPU thread(s) each")
    _plot(result["rows"], out / "e2e.png", title)
