"""Rate–fidelity curves: the sensitivity-weighted codec (wire format 2) at a sweep of ``quality``, at each cut,
against the same frames (letterboxed to the network input, as the tail sees them) as JPEG, WebP and AVIF at a sweep
of qualities; plus a static-camera clip with and without temporal delta coding, and encode/decode time against the
head's on one thread.

    python -m splitinfer.bench.codec_curve --skimage-data DIR            # everything (~25 min on 2 busy cores)
    python -m splitinfer.bench.codec_curve --quick                       # cut d, fewer points (~5 min)

Frames come from ``splitinfer.bench.codec_frames`` (calibration, evaluation, small, static: disjoint source
photographs; see there). Each cut is calibrated on the calibration set only (tables are cached under
``--tables``); every figure is measured on the evaluation set, the small-objects set or the static clip. Fidelity
is ``splitctl bench codec``'s: the mAP50 and mAP50-95 of the detections after the codec (conf 0.001) against the
unsplit fp32 model's own detections on the original frame (conf 0.25). Prints tables and writes JSON (``-o``).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["image_codec_curve", "main", "matched_bytes", "weighted_curve"]

IMAGE_QUALITIES = {
    "jpeg": [40, 60, 75, 85, 90, 95],
    "webp": [40, 60, 75, 85, 90, 95],
    "avif": [35, 50, 60, 70, 80, 90],
}
QUALITIES = [30, 40, 50, 60, 70, 80]

Named = List[Tuple[str, np.ndarray]]


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Frames:
    """One frame set, letterboxed once, with the unsplit model's reference detections."""

    def __init__(self, model: Any, frames: Named, imgsz: int) -> None:
        import splitinfer
        from splitinfer.splitting.preprocess import letterboxed_uint8

        self.names = [n for n, _ in frames]
        self.batches = [splitinfer.to_batch([img], imgsz) for _, img in frames]
        self.letterboxed = [letterboxed_uint8(img, imgsz) for _, img in frames]
        self.references = []
        for x, metas in self.batches:
            ref = splitinfer.postprocess(model(x), metas, conf=0.25, end2end=model.end2end)[0]
            self.references.append((ref.boxes, ref.classes))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def reference_boxes(self) -> int:
        return int(sum(len(b) for b, _ in self.references))

    def score(self, outputs: Sequence[Any], model: Any) -> Tuple[Optional[float], Optional[float]]:
        """(mAP50, mAP50-95) of the model outputs (one per frame) against the references."""
        import splitinfer
        from splitinfer.splitting.fidelity import mean_average_precision

        predictions = []
        for out, (_, metas) in zip(outputs, self.batches):
            p = splitinfer.postprocess(out, metas, conf=0.001, end2end=model.end2end)[0]
            predictions.append((p.boxes, p.scores, p.classes))
        return mean_average_precision(predictions, self.references)


def weighted_curve(model: Any, cut: str, table: Any, frames: Frames, qualities: Sequence[int]) -> List[Dict[str, Any]]:
    """Bytes and fidelity of the weighted codec at each quality on ``frames`` (features computed once)."""
    import splitinfer
    from splitinfer.codec import Codec

    head, tail = splitinfer.split(model, cut)
    features = [head(x, metas) for x, metas in frames.batches]
    decoder = Codec(table=table)
    rows = []
    for quality in qualities:
        encoder = Codec(table=table, quality=quality)
        sizes, outputs = [], []
        for fs in features:
            blob = encoder.encode(fs)
            sizes.append(len(blob))
            outputs.append(tail(decoder.decode(blob)))
        map50, map50_95 = frames.score(outputs, model)
        rows.append({"quality": quality, "delta": encoder.settings.delta, "kB": statistics.fmean(sizes) / 1000,
                     "kB_max": max(sizes) / 1000, "map50": map50, "map50_95": map50_95,
                     "bits_per_value": 8 * statistics.fmean(sizes) / features[0].numel})
    return rows


def _image_roundtrip(kind: str, quality: int, bgr: np.ndarray) -> Tuple[int, np.ndarray]:
    import cv2

    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise RuntimeError(f"OpenCV could not round-trip JPEG q{quality}")
        return len(buf), np.asarray(decoded)
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    if kind == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        image.save(out, "AVIF", quality=quality, speed=6, max_threads=1)
    data = out.getvalue()
    return len(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., ::-1]


def image_codec_curve(model: Any, frames: Frames, kind: str, qualities: Sequence[int]) -> List[Dict[str, Any]]:
    """Bytes and fidelity of an image codec: the letterboxed frame encoded, decoded and run through the whole model."""
    import torch

    rows = []
    for quality in qualities:
        sizes, outputs = [], []
        for bgr in frames.letterboxed:
            size, decoded = _image_roundtrip(kind, quality, bgr)
            sizes.append(size)
            x = torch.from_numpy(np.ascontiguousarray(decoded[..., ::-1].transpose(2, 0, 1)))[None].float() / 255
            outputs.append(model(x))
        map50, map50_95 = frames.score(outputs, model)
        rows.append({"codec": kind, "quality": quality, "kB": statistics.fmean(sizes) / 1000, "map50": map50,
                     "map50_95": map50_95})
    return rows


def matched_bytes(curve: Sequence[Dict[str, Any]], map50_95: float) -> Tuple[Optional[float], str]:
    """kB an image codec needs to reach ``map50_95`` on its measured curve, and how that was found: the cheapest
    measured point reaching it, interpolated (in log kB) from the point before it ("interpolated"); its cheapest
    point when even that one reaches it ("at most": the true figure is lower); None when none does ("never")."""
    points = sorted((r["kB"], r["map50_95"]) for r in curve if r["map50_95"] is not None)
    for k, (kb, fid) in enumerate(points):
        if fid >= map50_95:
            if k == 0:
                return kb, "at most"
            kb0, fid0 = points[k - 1]
            t = (map50_95 - fid0) / (fid - fid0)
            return float(np.exp(np.log(kb0) + t * (np.log(kb) - np.log(kb0)))), "interpolated"
    return None, "never"


def static_clip(
    model: Any, table: Any, frames: Frames, qualities: Sequence[int], intervals: Sequence[int]
) -> List[Dict[str, Any]]:
    """The static-camera clip at cut ``table.cut``, intra only (interval 0) and with a keyframe every ``interval``
    frames and delta frames between (the same symbols, so the same fidelity: only the bytes differ)."""
    import splitinfer
    from splitinfer.codec import Codec

    head, tail = splitinfer.split(model, table.cut)
    rows = []
    for quality, interval in [(q, i) for q in qualities for i in intervals]:
        encoder, decoder = Codec(table=table, quality=quality, keyframe_interval=interval), Codec(table=table)
        sizes, outputs = [], []
        for k, (x, metas) in enumerate(frames.batches):
            metas = [splitinfer.FrameMeta("static", k, float(k), m.orig_shape, m.ratio, m.pad) for m in metas]
            blob = encoder.encode(head(x, metas))
            sizes.append(len(blob))
            outputs.append(tail(decoder.decode(blob)))
        map50, map50_95 = frames.score(outputs, model)
        rows.append({"keyframe_interval": interval, "quality": quality, "kB": statistics.fmean(sizes) / 1000,
                     "kB_first": sizes[0] / 1000, "kB_rest": statistics.fmean(sizes[1:]) / 1000, "map50": map50,
                     "map50_95": map50_95})
    return rows


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


def speed(model: Any, cut: str, table: Any, frames: Frames, quality: int, rounds: int = 5) -> Dict[str, Any]:
    """Encode and decode ms (C coder) against the head's ms at ``cut``, one thread, on the first evaluation frame;
    and the pure-Python coder once (it is the fallback: slow, and only correctness matters)."""
    import splitinfer
    from splitinfer.codec import Codec, arith

    head, _ = splitinfer.split(model, cut)
    x, metas = frames.batches[0]
    features = head(x, metas)
    encoder, decoder = Codec(table=table, quality=quality), Codec(table=table)
    blob = encoder.encode(features)
    jobs = {"head": lambda: head(x, metas), "encode": lambda: encoder.encode(features),
            "decode": lambda: decoder.decode(blob)}
    times = _timed(jobs, rounds=rounds, calls=7)
    row: Dict[str, Any] = {"cut": cut, "quality": quality, "kB": len(blob) / 1000, "coder": arith.status()}
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


def calibrated(model: Any, cut: str, frames: Named, imgsz: int, folder: Path, log: Callable[[str], None]) -> Any:
    """The table of ``cut``, from ``folder`` if one for this model, cut and size is there, else measured now."""
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


def _fmt(v: Optional[float], spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a .pt checkpoint (default: the realistic YOLOv8s)")
    parser.add_argument("--skimage-data", default=None, help="scikit-image's data folder (see codec_frames)")
    parser.add_argument("--cuts", default="abcd")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--quick", action="store_true", help="cut d, three qualities, two image qualities")
    parser.add_argument("--tables", default="bench/results/tables")
    parser.add_argument("-o", "--output", default="bench/results/codec_curve.json")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import splitinfer
    from splitinfer.codec import arith
    from splitinfer.codec.settings import DEFAULT_QUALITY
    from splitinfer.splitting.weights import realistic_checkpoint

    from .codec_frames import build_sets

    def log(line: str) -> None:
        print(line, flush=True)

    cuts = "d" if args.quick else args.cuts
    qualities = [40, 50, 60] if args.quick else [int(q) for q in args.qualities.split(",")]
    image_qualities = {k: v[1:5:2] if args.quick else v for k, v in IMAGE_QUALITIES.items()}
    model = splitinfer.load_model(args.model or str(realistic_checkpoint()))
    sets = build_sets(args.skimage_data)
    log(f"frames: calibration {len(sets['calibration'])}, evaluation {len(sets['evaluation'])}, "
        f"small {len(sets['small'])}, static {len(sets['static'])}; coder: {arith.status()}")
    measured = {name: Frames(model, sets[name], args.imgsz) for name in ("evaluation", "small", "static")}
    result: Dict[str, Any] = {
        "model": model.source, "fingerprint": model.fingerprint, "imgsz": args.imgsz, "machine": platform.machine(),
        "coder": arith.status(), "default_quality": DEFAULT_QUALITY,
        "sets": {name: {"frames": f.names, "reference_boxes": f.reference_boxes} for name, f in measured.items()},
        "calibration_frames": [n for n, _ in sets["calibration"]], "weighted": {}, "image": {}, "static": [],
        "speed": [],
    }
    tables = {cut: calibrated(model, cut, sets["calibration"], args.imgsz, Path(args.tables), log) for cut in cuts}
    for name in ("evaluation", "small"):
        frames = measured[name]
        result["image"][name] = []
        for kind, qs in image_qualities.items():
            result["image"][name] += image_codec_curve(model, frames, kind, qs)
        result["weighted"][name] = {}
        for cut in cuts:
            rows = weighted_curve(model, cut, tables[cut], frames, qualities)
            for row in rows:
                for kind in IMAGE_QUALITIES:
                    curve = [r for r in result["image"][name] if r["codec"] == kind]
                    found, how = matched_bytes(curve, row["map50_95"]) if row["map50_95"] is not None else (None, "")
                    row[f"{kind}_kB_at_same_map50_95"], row[f"{kind}_match"] = found, how
            result["weighted"][name][cut] = rows
        _print_set(name, frames, result, cuts)
    if "d" in tables:
        static_qualities = [DEFAULT_QUALITY] if args.quick else qualities
        result["static"] = static_clip(model, tables["d"], measured["static"], static_qualities, [0, 10, 30])
        result["image"]["static"] = []
        for kind, qs in ({} if args.quick else IMAGE_QUALITIES).items():
            result["image"]["static"] += image_codec_curve(model, measured["static"], kind, qs)
        log(f"\nstatic clip, cut d ({len(measured['static'])} frames, {measured['static'].reference_boxes} reference "
            "boxes)")
        log("quality | keyframe interval | kB/frame | first | rest | mAP50 | mAP50-95")
        for r in result["static"]:
            log(f"{r['quality']} | {r['keyframe_interval']} | {r['kB']:.2f} | {r['kB_first']:.2f} | "
                f"{r['kB_rest']:.2f} | {_fmt(r['map50'])} | {_fmt(r['map50_95'])}")
        for r in result["image"]["static"]:
            log(f"{r['codec']} q{r['quality']} | — | {r['kB']:.1f} | | | {_fmt(r['map50'])} | {_fmt(r['map50_95'])}")
    log(f"\nspeed (one thread, quality {DEFAULT_QUALITY}; wall ms, CPU ms in brackets): cut | head | encode | "
        "decode | (enc+dec)/head | pure-Python enc/dec ms")
    for cut in cuts:
        row = speed(model, cut, tables[cut], measured["evaluation"], DEFAULT_QUALITY, rounds=3 if args.quick else 5)
        result["speed"].append(row)
        log(f"{cut} | {row['head_ms']:.1f} ({row['head_cpu_ms']:.1f}) | {row['encode_ms']:.2f} "
            f"({row['encode_cpu_ms']:.2f}) | {row['decode_ms']:.2f} ({row['decode_cpu_ms']:.2f}) | "
            f"{100 * row['share_of_head']:.1f} % ({100 * row['cpu_share_of_head']:.1f} %) | "
            f"{row['python_encode_ms']:.0f} / {row['python_decode_ms']:.0f} (same bytes: {row['python_same_bytes']})")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    log(f"\nwrote {out}")
    return result


def _print_set(name: str, frames: Frames, result: Dict[str, Any], cuts: str) -> None:
    print(f"\n{name}: {len(frames)} frames, {frames.reference_boxes} reference boxes")
    print("codec | cut | quality | kB/frame | mAP50 | mAP50-95 | JPEG / WebP / AVIF kB at the same mAP50-95 "
          "(≤: their cheapest point measured already reaches it; —: none does)")
    for cut in cuts:
        for r in result["weighted"][name][cut]:
            matched = " / ".join(("≤" if r[f"{k}_match"] == "at most" else "") +
                                 _fmt(r[f"{k}_kB_at_same_map50_95"], ".1f") for k in IMAGE_QUALITIES)
            print(f"weighted | {cut} | {r['quality']} | {r['kB']:.1f} | {_fmt(r['map50'])} | "
                  f"{_fmt(r['map50_95'])} | {matched}")
    for r in result["image"][name]:
        print(f"{r['codec']} | — | {r['quality']} | {r['kB']:.1f} | {_fmt(r['map50'])} | {_fmt(r['map50_95'])} |")


if __name__ == "__main__":
    main()
