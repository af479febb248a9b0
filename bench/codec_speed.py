"""Codec speed: splitinfer's Codec vs the seed codec, and against the head's own compute, at one cut.

    PYTHONPATH=src python bench/codec_speed.py                  # yolo11n.yaml at 640, cut b, bus.jpg
    PYTHONPATH=src python bench/codec_speed.py --threads 2 --bits 2 4 8
    PYTHONPATH=src python bench/codec_speed.py --model "$(scripts/fetch-weights)"   # the realistic YOLOv8s

Runs single-threaded by default (a fair, quiet measurement on a shared box). Every time is the median of
``--repeat`` calls (one call for the seed codec) in the least-disturbed of ``--rounds`` rounds, the rounds going
over all measurements in turn. The seed codec's
per-value Python loops are timed on the whole live set unless ``--seed-values`` is smaller, in which case its
time is scaled linearly and the output says so. Prints a table and writes bench/results/codec_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

RESULTS = Path(__file__).parent / "results"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--cut", default="b")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed-values", type=int, default=0, help="time the seed codec on this many values")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import cv2
    import ultralytics

    from seed_codec import seed_decode, seed_encode
    from splitinfer import Codec
    from splitinfer.codec import simd
    from splitinfer.splitting import load_model, split, to_batch

    model = load_model(args.model)
    head, _ = split(model, args.cut)
    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    x, metas = to_batch([image], args.imgsz)
    features = head(x, metas)
    n = features.numel

    # each --bits at its defaults, then the seed's own quantization (4 bits on every tensor, one step per tensor):
    # the same work as the seed, done the vectorized way
    settings = [(f"splitinfer bits={b}", {"bits": b}) for b in args.bits]
    settings.append(("splitinfer, seed's settings", {"bits": 4, "granularity": "tensor", "coarse_extra_bits": 0}))
    seed_tensors = list(features.tensors)
    scale = 1.0
    if args.seed_values and args.seed_values < n:
        flat = torch.cat([t.flatten() for t in seed_tensors])[: args.seed_values]
        seed_tensors, scale = [flat], n / args.seed_values
    seed_blob = seed_encode(seed_tensors)

    jobs: Dict[str, Tuple[Callable[[], Any], int]] = {"head": (lambda: head(x, metas), args.repeat)}
    blobs: Dict[str, bytes] = {}
    codecs: Dict[str, Any] = {}
    for name, options in settings:
        codec, decoder = Codec(**options), Codec()
        blob = blobs[name] = codec.encode(features)
        codecs[name] = codec
        jobs[f"{name} encode"] = (lambda c=codec: c.encode(features), args.repeat)
        jobs[f"{name} decode"] = (lambda b=blob, d=decoder: d.decode(b), args.repeat)
    jobs["seed encode"] = (lambda: seed_encode(seed_tensors), 1)
    jobs["seed decode"] = (lambda: seed_decode(seed_blob), 1)
    ms = timed(jobs, args.rounds)
    head_ms = ms["head"]
    print(
        f"{args.model} cut {args.cut} (layer {head.cut}), live {list(features.layers)}: {n} values; "
        f"head {head_ms:.1f} ms on {args.threads} thread(s); codec: {simd.status()}"
    )

    rows: List[Dict[str, Any]] = []
    for name, _ in settings:
        enc, dec = ms[f"{name} encode"], ms[f"{name} decode"]
        rows.append(
            {
                "codec": name,
                "settings": codecs[name].describe(),
                "bits_per_value": 8 * len(blobs[name]) / n,
                "encode_ms": enc,
                "decode_ms": dec,
                "share_of_head": (enc + dec) / head_ms,
                "encode_share_of_head": enc / head_ms,
            }
        )
    seed_enc, seed_dec = ms["seed encode"] * scale, ms["seed decode"] * scale
    note = f"timed on {args.seed_values} values, scaled x{scale:.2f}" if scale != 1.0 else "timed on all values"
    rows.append(
        {
            "codec": "seed (4-bit per-tensor, Python loop)",
            "bits_per_value": 8 * len(seed_blob) * scale / n,
            "encode_ms": seed_enc,
            "decode_ms": seed_dec,
            "share_of_head": (seed_enc + seed_dec) / head_ms,
            "encode_share_of_head": seed_enc / head_ms,
            "note": note,
        }
    )
    seed_total = seed_enc + seed_dec
    for r in rows:
        r["speedup_vs_seed"] = seed_total / (r["encode_ms"] + r["decode_ms"])

    print(f"{'codec':40s} {'bits/val':>8s} {'enc ms':>8s} {'dec ms':>8s} {'% head':>7s} {'x seed':>8s}")
    for r in rows:
        print(
            f"{r['codec']:40s} {r['bits_per_value']:8.3f} {r['encode_ms']:8.2f} {r['decode_ms']:8.2f} "
            f"{100 * r['share_of_head']:6.1f}% {r['speedup_vs_seed']:8.1f}"
        )
    print(f"seed codec: {note}; % head = (encode + decode) / head compute")
    RESULTS.mkdir(exist_ok=True)
    report = {
        "model": args.model,
        "cut": args.cut,
        "layer": head.cut,
        "values": n,
        "threads": args.threads,
        "kernels": simd.status(),
        "repeat": args.repeat,
        "rounds": args.rounds,
        "head_ms": head_ms,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "rows": rows,
    }
    (RESULTS / "codec_speed.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
