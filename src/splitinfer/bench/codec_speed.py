"""``splitctl bench codec-speed``: splitinfer's Codec vs the seed codec, and against the head's own compute.

    splitctl bench codec-speed                                  # yolo11n.yaml at 640, cut b, bus.jpg
    splitctl bench codec-speed --threads 2 --bits 2,4,8
    splitctl bench codec-speed --model "$(scripts/fetch-weights)"   # the realistic YOLOv8s

Runs single-threaded by default (a fair, quiet measurement on a shared box). Every time is the median of
``--repeat`` calls (one call for the seed codec) in the least-disturbed of ``--rounds`` rounds, the rounds going
over all measurements in turn. The seed codec's
per-value Python loops are timed on the whole live set unless ``--seed-values`` is smaller, in which case its
time is scaled linearly and the output says so. Prints a table and writes bench/results/codec_speed.json.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

__all__ = ["run_codec_speed", "timed"]


def timed(jobs: Dict[str, Tuple[Callable[[], Any], int]], rounds: int) -> Dict[str, float]:
    """Wall time in ms of each job ``name: (fn, calls)``: the median of ``calls`` calls in its least-disturbed round.

    The box is a shared VM whose neighbours slow everything for seconds at a time. Rounds go over all the jobs in
    turn, so each job's rounds are spread over the whole run, and a slowed round says nothing about the code: the
    quietest one counts, for the codec, the head and the seed alike.
    """
    for fn, _ in jobs.values():
        fn()  # warm-up
    best: Dict[str, float] = {}
    for _ in range(rounds):
        for name, (fn, calls) in jobs.items():
            runs: List[float] = []
            for _ in range(calls):
                t = time.perf_counter()
                fn()
                runs.append((time.perf_counter() - t) * 1000)
            best[name] = min(best.get(name, float("inf")), statistics.median(runs))
    return best


def run_codec_speed(
    model_path: str = "yolo11n.yaml", *, cut: str = "b", imgsz: int = 640, bits: Sequence[int] = (2, 3, 4, 8),
    threads: int = 1, repeat: int = 15, rounds: int = 5, seed_values: int = 0,
) -> Dict[str, Any]:
    """Time every ``bits`` setting (and the seed's) on bus.jpg at ``cut``; the result as plain data."""
    import cv2
    import torch

    from splitinfer.codec import Codec, simd
    from splitinfer.errors import SourceError
    from splitinfer.splitting import load_model, split, to_batch
    from splitinfer.splitting.samples import bundled_images

    from .seed_codec import seed_decode, seed_encode

    torch.set_num_threads(threads)
    model = load_model(model_path)
    head, _ = split(model, cut)
    path = next(p for p in bundled_images() if p.name == "bus.jpg")
    image = cv2.imread(str(path))
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    x, metas = to_batch([image], imgsz)
    features = head(x, metas)
    n = features.numel

    # each --bits at its defaults, then the seed's own quantization (4 bits on every tensor, one step per tensor):
    # the same work as the seed, done the vectorized way
    settings: List[Tuple[str, Dict[str, Any]]] = [(f"splitinfer bits={b}", {"bits": b}) for b in bits]
    settings.append(("splitinfer, seed's settings", {"bits": 4, "granularity": "tensor", "coarse_extra_bits": 0}))
    seed_tensors = list(features.tensors)
    scale = 1.0
    if seed_values and seed_values < n:
        flat = torch.cat([t.flatten() for t in seed_tensors])[:seed_values]
        seed_tensors, scale = [flat], n / seed_values
    seed_blob = seed_encode(seed_tensors)

    jobs: Dict[str, Tuple[Callable[[], Any], int]] = {"head": (lambda: head(x, metas), repeat)}
    blobs: Dict[str, bytes] = {}
    codecs: Dict[str, Any] = {}
    for name, options in settings:
        codec, decoder = Codec(**options), Codec()
        blob = blobs[name] = codec.encode(features)
        codecs[name] = codec
        jobs[f"{name} encode"] = (_encoder(codec, features), repeat)
        jobs[f"{name} decode"] = (_decoder(decoder, blob), repeat)
    jobs["seed encode"] = (lambda: seed_encode(seed_tensors), 1)
    jobs["seed decode"] = (lambda: seed_decode(seed_blob), 1)
    ms = timed(jobs, rounds)
    head_ms = ms["head"]

    rows: List[Dict[str, Any]] = []
    for name, _ in settings:
        enc, dec = ms[f"{name} encode"], ms[f"{name} decode"]
        rows.append({
            "codec": name, "settings": codecs[name].describe(), "bits_per_value": 8 * len(blobs[name]) / n,
            "encode_ms": enc, "decode_ms": dec, "share_of_head": (enc + dec) / head_ms,
            "encode_share_of_head": enc / head_ms,
        })
    seed_enc, seed_dec = ms["seed encode"] * scale, ms["seed decode"] * scale
    note = f"timed on {seed_values} values, scaled x{scale:.2f}" if scale != 1.0 else "timed on all values"
    rows.append({
        "codec": "seed (4-bit per-tensor, Python loop)", "bits_per_value": 8 * len(seed_blob) * scale / n,
        "encode_ms": seed_enc, "decode_ms": seed_dec, "share_of_head": (seed_enc + seed_dec) / head_ms,
        "encode_share_of_head": seed_enc / head_ms, "note": note,
    })
    seed_total = seed_enc + seed_dec
    for r in rows:
        r["speedup_vs_seed"] = seed_total / (r["encode_ms"] + r["decode_ms"])
    return {
        "model": model_path, "cut": cut, "layer": head.cut, "live_layers": list(features.layers), "values": n,
        "threads": threads, "kernels": simd.status(), "repeat": repeat, "rounds": rounds, "head_ms": head_ms,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "seed_note": note,
        "rows": rows,
    }


def _encoder(codec: Any, features: Any) -> Callable[[], Any]:
    return lambda: codec.encode(features)


def _decoder(decoder: Any, blob: bytes) -> Callable[[], Any]:
    return lambda: decoder.decode(blob)
