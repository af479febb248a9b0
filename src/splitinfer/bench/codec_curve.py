"""``splitctl bench codec-curve``: the sensitivity-weighted codec's rate–fidelity study.

At each cut, the codec (wire format 2) at a sweep of ``quality`` against the same frames, letterboxed to the
network input as the tail sees them, as JPEG, WebP and AVIF at a sweep of qualities; a static-camera clip and a
moving-camera (panning) clip at cut d, intra only and with temporal delta coding; encode/decode time against the
head's, on one thread.

    splitctl bench codec-curve --skimage-data DIR        # everything (~35 min on 2 busy cores)
    splitctl bench codec-curve --quick                   # cut d, three qualities, two image qualities (~8 min)

Frames come from :mod:`splitinfer.bench.codec_frames` (calibration, evaluation, small, static, panning: disjoint
source photographs). Each cut is calibrated on the calibration set only (tables are cached under ``tables``);
every figure is measured on the other sets. Fidelity and rate as :mod:`splitinfer.bench.rate_fidelity` defines
them. Returns one JSON-ready document; :func:`summary_tables` lays it out as tables.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .codec_frames import PAN_SPEED, PAN_WINDOW, Named
from .rate_fidelity import (
    IMAGE_CODECS,
    IMAGE_QUALITIES,
    ImageBaselines,
    Tally,
    detections,
    matched_per_codec,
    reference,
)

__all__ = ["QUALITIES", "CurveOptions", "measure_clip", "measure_set", "run_codec_curve", "summary_tables"]

QUALITIES = [30, 40, 50, 60, 70, 80]
QUICK_QUALITIES = [40, 50, 60]
STATIC_INTERVALS = [0, 10, 30]
PAN_INTERVALS = [0, 2, 10]  # 2: every delta frame refers to the frame just before it, the best case for delta
# more panning clips, codec only: (px a frame, window width); 720 px wide is square: no letterbox padding, which
# stays still however the camera moves
PAN_VARIANTS = ((1, 1280), (16, 1280), (4, 720), (16, 720))
CLIP_CUT = "d"

Log = Callable[[str], None]
Table = Tuple[str, List[str], List[List[str]]]


@dataclass
class CurveOptions:
    model: Optional[str] = None  # a .pt checkpoint; None: the realistic YOLOv8s
    skimage_data: Optional[str] = None  # scikit-image's data folder (codec_frames.skimage_data_dir)
    cuts: List[str] = field(default_factory=lambda: list("abcd"))
    imgsz: int = 640
    qualities: List[int] = field(default_factory=lambda: list(QUALITIES))
    quick: bool = False
    tables: Path = Path("bench/results/tables")


@dataclass(frozen=True)
class Cut:
    """One cut of the model: its head, tail and calibration table."""

    name: str
    head: Any
    tail: Any
    table: Any


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


# ------------------------------------------------------------------------------------------------ measuring


def measure_set(
    model: Any, frames: Named, imgsz: int, cuts: Sequence[Cut], qualities: Sequence[int],
    image: Optional[ImageBaselines],
) -> Dict[str, Any]:
    """The weighted codec at each cut and quality, and the image codecs, on ``frames`` (streamed once)."""
    import splitinfer
    from splitinfer.codec import Codec
    from splitinfer.codec.settings import delta_for
    from splitinfer.splitting.preprocess import letterboxed_uint8

    tallies = {c.name: [Tally(quality=q, delta=delta_for(q)) for q in qualities] for c in cuts}
    coders = {c.name: ([Codec(table=c.table, quality=q) for q in qualities], Codec(table=c.table)) for c in cuts}
    values: Dict[str, int] = {}
    references = []
    for _, img in frames:
        x, metas = splitinfer.to_batch([img], imgsz)
        references.append(reference(model, model(x), metas))
        for c in cuts:
            features = c.head(x, metas)
            values[c.name] = features.numel
            encoders, decoder = coders[c.name]
            for tally, encoder in zip(tallies[c.name], encoders):
                blob = encoder.encode(features)
                tally.add(len(blob), detections(model, c.tail(decoder.decode(blob)), metas))
        if image is not None:
            image.add(model, letterboxed_uint8(img, imgsz), metas)
    curve = image.rows(references) if image is not None else []
    weighted = {}
    for c in cuts:
        rows = [t.row(references) for t in tallies[c.name]]
        for row in rows:
            row["bits_per_value"] = 8000 * row["kB"] / values[c.name]
            row["image_match"] = matched_per_codec(curve, row["map50_95"])
        weighted[c.name] = rows
    return {"frames": [n for n, _ in frames], "reference_boxes": _boxes(references), "weighted": weighted,
            "image": curve}


def _boxes(references: Sequence[Any]) -> int:
    return int(sum(len(boxes) for boxes, _ in references))


def measure_clip(
    model: Any, frames: Named, imgsz: int, cut: Cut, qualities: Sequence[int], intervals: Sequence[int],
    image: Optional[ImageBaselines],
) -> Dict[str, Any]:
    """A clip (one source, consecutive sequence numbers) at ``cut``, intra only (interval 0) and with a keyframe
    every ``interval`` frames and delta frames between: the same symbols, so the same fidelity; only bytes differ."""
    import splitinfer
    from splitinfer.codec import Codec
    from splitinfer.splitting.preprocess import letterboxed_uint8

    configs = [(q, i) for q in qualities for i in intervals]
    tallies = [Tally(quality=q, keyframe_interval=i) for q, i in configs]
    coders = [(Codec(table=cut.table, quality=q, keyframe_interval=i), Codec(table=cut.table)) for q, i in configs]
    references = []
    for k, (_, img) in enumerate(frames):
        x, metas = splitinfer.to_batch([img], imgsz, sources=["clip"], seqs=[k], timestamps=[k / 30])
        references.append(reference(model, model(x), metas))
        features = cut.head(x, metas)
        for tally, (encoder, decoder) in zip(tallies, coders):
            blob = encoder.encode(features)
            tally.add(len(blob), detections(model, cut.tail(decoder.decode(blob)), metas))
        if image is not None:
            image.add(model, letterboxed_uint8(img, imgsz), metas)
    rows = []
    for tally in tallies:
        row = tally.row(references)
        row["kB_first"] = tally.sizes[0] / 1000
        row["kB_rest"] = statistics.fmean(tally.sizes[1:]) / 1000 if len(tally.sizes) > 1 else None
        rows.append(row)
    intra = {r["quality"]: r["kB"] for r in rows if r["keyframe_interval"] == 0}
    for row in rows:
        row["vs_intra"] = row["kB"] / intra[row["quality"]] if row["quality"] in intra else None
    return {"cut": cut.name, "frames": [n for n, _ in frames], "reference_boxes": _boxes(references), "rows": rows,
            "image": image.rows(references) if image is not None else []}


def _timed(jobs: Dict[str, Callable[[], Any]], rounds: int, calls: int) -> Dict[str, float]:
    """ms per job, wall clock and this thread's CPU time (``<name>_cpu``): the median of ``calls`` calls in its
    least-disturbed round; rounds interleave all jobs (the box is shared: a slowed round says nothing about the
    code, and CPU time does not count the time other processes held the core)."""
    for fn in jobs.values():
        fn()
    best: Dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in jobs.items():
            wall, cpu = [], []
            for _ in range(calls):
                t, c = time.perf_counter(), time.thread_time()
                fn()
                cpu.append((time.thread_time() - c) * 1000.0)
                wall.append(_ms(t))
            best[name] = min(best.get(name, float("inf")), statistics.median(wall))
            best[name + "_cpu"] = min(best.get(name + "_cpu", float("inf")), statistics.median(cpu))
    return best


def speed(cut: Cut, x: Any, metas: Any, quality: int, rounds: int = 5) -> Dict[str, Any]:
    """Encode and decode ms (C coder) against the head's ms at ``cut``, one thread, on one frame; and the
    pure-Python coder once (it is the fallback: slow, and only correctness matters)."""
    from splitinfer.codec import Codec, arith

    features = cut.head(x, metas)
    encoder, decoder = Codec(table=cut.table, quality=quality), Codec(table=cut.table)
    blob = encoder.encode(features)
    jobs = {"head": lambda: cut.head(x, metas), "encode": lambda: encoder.encode(features),
            "decode": lambda: decoder.decode(blob)}
    times = _timed(jobs, rounds=rounds, calls=7)
    row: Dict[str, Any] = {"cut": cut.name, "quality": quality, "kB": len(blob) / 1000, "coder": arith.status()}
    for name in ("head", "encode", "decode"):
        row[f"{name}_ms"], row[f"{name}_cpu_ms"] = times[name], times[name + "_cpu"]
    row["share_of_head"] = (times["encode"] + times["decode"]) / times["head"]
    row["cpu_share_of_head"] = (times["encode_cpu"] + times["decode_cpu"]) / times["head_cpu"]
    saved, arith.native = arith.native, None
    try:
        t = time.perf_counter()
        slow_blob = encoder.encode(features)
        row["python_encode_ms"] = _ms(t)
        t = time.perf_counter()
        decoder.decode(slow_blob)
        row["python_decode_ms"] = _ms(t)
        row["python_same_bytes"] = slow_blob == blob
    finally:
        arith.native = saved
    return row


def calibrated(model: Any, cut: str, frames: Named, imgsz: int, folder: Path, log: Log) -> Any:
    """The table of ``cut``, from ``folder`` if one for this model, cut, size and frame count is there, else
    measured now (and saved there)."""
    from splitinfer.codec import CalibrationTable
    from splitinfer.splitting.sensitivity import calibrate

    head_cut = model.graph.resolve_cut(cut)
    path = folder / f"table-{model.fingerprint[:12]}-{head_cut}-{imgsz}.npz"
    if path.is_file():
        table = CalibrationTable.load(path)
        if table.model == model.fingerprint and table.meta.get("frames") == len(frames):
            log(f"cut {cut}: calibration table {path} ({table.hexdigest[:12]}…)")
            return table
    start = time.perf_counter()
    table = calibrate(model, cut, [img for _, img in frames], imgsz=imgsz)
    folder.mkdir(parents=True, exist_ok=True)
    table.save(path)
    log(f"cut {cut}: calibrated on {len(frames)} frames in {time.perf_counter() - start:.0f} s → {path}")
    return table


# ------------------------------------------------------------------------------------------------ the study


def run_codec_curve(opts: CurveOptions, log: Log = print) -> Dict[str, Any]:
    """The whole study (:class:`CurveOptions`) as one JSON-ready document; ``log`` hears progress."""
    import torch

    torch.set_num_threads(1)
    import splitinfer
    from splitinfer.codec import arith
    from splitinfer.codec.settings import DEFAULT_QUALITY
    from splitinfer.splitting.weights import realistic_checkpoint

    from .codec_frames import build_sets

    started = time.perf_counter()
    qualities = QUICK_QUALITIES if opts.quick else list(opts.qualities)
    images = {k: v[1:5:2] if opts.quick else v for k, v in IMAGE_QUALITIES.items()}
    model = splitinfer.load_model(opts.model or str(realistic_checkpoint()))
    sets = build_sets(opts.skimage_data)
    log(f"frames: {', '.join(f'{k} {len(v)}' for k, v in sets.items())}; coder: {arith.status()}")
    cuts = _cuts(model, [CLIP_CUT] if opts.quick else list(opts.cuts), sets["calibration"], opts, log)
    result: Dict[str, Any] = {
        "model": model.source, "fingerprint": model.fingerprint, "imgsz": opts.imgsz, "machine": platform.machine(),
        "threads": 1, "coder": arith.status(), "default_quality": DEFAULT_QUALITY, "quick": opts.quick,
        "calibration": {"frames": [n for n, _ in sets["calibration"]],
                        "tables": {c.name: c.table.hexdigest for c in cuts}},
        "sets": {}, "clips": {}, "speed": [],
    }
    for name in ("evaluation", "small"):
        log(f"measuring the {name} set ({len(sets[name])} frames)…")
        result["sets"][name] = measure_set(model, sets[name], opts.imgsz, cuts, qualities,
                                           ImageBaselines(IMAGE_CODECS, images))
    clip_cut = next((c for c in cuts if c.name == CLIP_CUT), None)
    if clip_cut is not None:
        clip_qualities = [DEFAULT_QUALITY] if opts.quick else qualities
        for clip in _clips(sets, opts):
            log(f"measuring the {clip.name} clip ({len(clip.frames)} frames)…")
            image = ImageBaselines(IMAGE_CODECS, images) if clip.images and not opts.quick else None
            found = measure_clip(model, clip.frames, opts.imgsz, clip_cut, clip_qualities, clip.intervals, image)
            result["clips"][clip.name] = {**found, "speed_px": clip.speed_px, "window": clip.window}
    x, metas = splitinfer.to_batch([sets["evaluation"][0][1]], opts.imgsz)
    for c in cuts:
        log(f"timing cut {c.name}…")
        result["speed"].append(speed(c, x, metas, DEFAULT_QUALITY, rounds=3 if opts.quick else 5))
    result["wall_s"] = round(time.perf_counter() - started)
    return result


def _cuts(model: Any, names: Sequence[str], calibration: Named, opts: CurveOptions, log: Log) -> List[Cut]:
    import splitinfer

    cuts = []
    for name in names:
        table = calibrated(model, name, calibration, opts.imgsz, Path(opts.tables), log)
        head, tail = splitinfer.split(model, name)
        cuts.append(Cut(name, head, tail, table))
    return cuts


@dataclass(frozen=True)
class Clip:
    name: str
    frames: Named
    intervals: Sequence[int]
    images: bool  # also measure the image codecs on it
    speed_px: Optional[int] = None  # a panning clip's speed and window (height, width)
    window: Optional[List[int]] = None


def _clips(sets: Dict[str, Named], opts: CurveOptions) -> List[Clip]:
    from .codec_frames import panning_clip

    clips = [Clip("static", sets["static"], STATIC_INTERVALS, True),
             Clip("panning", sets["panning"], PAN_INTERVALS, True, PAN_SPEED, list(PAN_WINDOW))]
    for speed_px, width in () if opts.quick else PAN_VARIANTS:
        name = f"panning-{speed_px}px" + ("-square" if width == PAN_WINDOW[0] else "")
        clips.append(Clip(name, panning_clip(speed_px, opts.skimage_data, width=width), PAN_INTERVALS, False,
                          speed_px, [PAN_WINDOW[0], width]))
    return clips


# ------------------------------------------------------------------------------------------------ tables


def _fmt(v: Optional[float], spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _match_cell(m: Dict[str, Any]) -> str:
    prefix = {"at most": "≤", "interpolated": ""}.get(m["match"], "")
    return prefix + _fmt(m["kB"], ".1f")


def _set_tables(name: str, s: Dict[str, Any]) -> List[Table]:
    kinds = [k for k in IMAGE_CODECS if any(r["codec"] == k for r in s["image"])]
    columns = ["cut", "quality", "kB/frame", "mAP50", "mAP50-95", *(f"{k.upper()} kB" for k in kinds)]
    rows = []
    for cut, points in s["weighted"].items():
        for r in points:
            rows.append([cut, str(r["quality"]), f"{r['kB']:.1f}", _fmt(r["map50"]), _fmt(r["map50_95"]),
                         *(_match_cell(r["image_match"][k]) for k in kinds)])
    title = (f"{name}: {len(s['frames'])} frames, {s['reference_boxes']} reference boxes — ours, and what the image "
             "codecs need for the same mAP50-95 (≤: their cheapest point already reaches it; —: none of theirs does)")
    return [(title, columns, rows), _image_table(f"{name}: the image codecs on the same frames", s["image"])]


def _image_table(title: str, curve: Sequence[Dict[str, Any]]) -> Table:
    rows = [[r["codec"], str(r["quality"]), f"{r['kB']:.1f}", _fmt(r["map50"]), _fmt(r["map50_95"])] for r in curve]
    return title, ["codec", "quality", "kB/frame", "mAP50", "mAP50-95"], rows


def _clip_tables(name: str, c: Dict[str, Any]) -> List[Table]:
    speed_px, window = c.get("speed_px"), c.get("window")
    what = f"{window[1]}×{window[0]} window, {speed_px} px a frame" if window else "fixed camera"
    rows = [[str(r["quality"]), str(r["keyframe_interval"]), f"{r['kB']:.2f}", f"{r['kB_first']:.2f}",
             _fmt(r["kB_rest"], ".2f"), _fmt(r["vs_intra"], ".2f"), _fmt(r["map50"]), _fmt(r["map50_95"])]
            for r in c["rows"]]
    title = (f"{name} clip ({what}), cut {c['cut']}: {len(c['frames'])} frames, {c['reference_boxes']} reference "
             "boxes; keyframe interval 0 = intra only")
    columns = ["quality", "keyframe interval", "kB/frame", "first", "rest", "× intra", "mAP50", "mAP50-95"]
    tables = [(title, columns, rows)]
    if c["image"]:
        tables.append(_image_table(f"{name} clip: the image codecs", c["image"]))
    return tables


def _speed_table(rows: Sequence[Dict[str, Any]]) -> Table:
    body = [[r["cut"], f"{r['head_ms']:.1f} ({r['head_cpu_ms']:.1f})",
             f"{r['encode_ms']:.2f} ({r['encode_cpu_ms']:.2f})", f"{r['decode_ms']:.2f} ({r['decode_cpu_ms']:.2f})",
             f"{100 * r['share_of_head']:.1f} % ({100 * r['cpu_share_of_head']:.1f} %)",
             f"{r['python_encode_ms']:.0f} / {r['python_decode_ms']:.0f}", str(r["python_same_bytes"])] for r in rows]
    quality = rows[0]["quality"] if rows else "—"
    return (f"speed, one thread, quality {quality}: wall ms (CPU ms)",
            ["cut", "head", "encode", "decode", "(enc+dec)/head", "pure-Python enc/dec ms", "same bytes"], body)


def summary_tables(result: Dict[str, Any]) -> List[Table]:
    """The study as (title, columns, rows) tables of text, in the order they are best read."""
    tables: List[Table] = []
    for name, s in result["sets"].items():
        tables += _set_tables(name, s)
    for name, c in result["clips"].items():
        tables += _clip_tables(name, c)
    if result["speed"]:
        tables.append(_speed_table(result["speed"]))
    return tables
