"""Codec speed: splitinfer's Codec vs the seed codec, and against the head's own compute, at one cut.

    PYTHONPATH=src python bench/codec_speed.py                  # yolo11n.yaml at 640, cut b, bus.jpg
    PYTHONPATH=src python bench/codec_speed.py --threads 2 --bits 2 4 8
    PYTHONPATH=src python bench/codec_speed.py --model "$(scripts/fetch-weights)"   # the realistic YOLOv8s

Runs single-threaded by default (a fair, quiet measurement on a shared box). Times are medians: of ``--repeat``
runs for splitinfer's codec and the head, of ``--seed-repeat`` runs for the seed codec, whose per-value Python
loops are timed on the whole live set unless ``--seed-values`` is smaller, in which case its time is scaled
linearly and the output says so. Prints a table and writes bench/results/codec_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

RESULTS = Path(__file__).parent / "results"


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` in ms (after one warm-up call)."""
    fn()
    runs: List[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--cut", default="b")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed-repeat", type=int, default=3)
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
    head_ms = timed(lambda: head(x, metas), args.repeat)  # as many runs as the codec: % head is a ratio
    print(
        f"{args.model} cut {args.cut} (layer {head.cut}), live {list(features.layers)}: {n} values; "
        f"head {head_ms:.1f} ms on {args.threads} thread(s); codec: {simd.status()}"
    )

    # each --bits at its defaults, then the seed's own quantization (4 bits on every tensor, one step per tensor):
    # the same work as the seed, done the vectorized way
    settings = [(f"splitinfer bits={b}", {"bits": b}) for b in args.bits]
    settings.append(("splitinfer, seed's settings", {"bits": 4, "granularity": "tensor", "coarse_extra_bits": 0}))
    rows: List[Dict[str, Any]] = []
    for name, options in settings:
        codec, decoder = Codec(**options), Codec()
        blob = codec.encode(features)
        enc = timed(lambda c=codec: c.encode(features), args.repeat)
        dec = timed(lambda b=blob, d=decoder: d.decode(b), args.repeat)
        rows.append(
            {
                "codec": name,
                "settings": codec.describe(),
                "bits_per_value": 8 * len(blob) / n,
                "encode_ms": enc,
                "decode_ms": dec,
                "share_of_head": (enc + dec) / head_ms,
                "encode_share_of_head": enc / head_ms,
            }
        )

    seed_tensors = list(features.tensors)
    scale = 1.0
    if args.seed_values and args.seed_values < n:
        flat = torch.cat([t.flatten() for t in seed_tensors])[: args.seed_values]
        seed_tensors, scale = [flat], n / args.seed_values
    seed_blob = seed_encode(seed_tensors)
    seed_enc = timed(lambda: seed_encode(seed_tensors), args.seed_repeat) * scale
    seed_dec = timed(lambda: seed_decode(seed_blob), args.seed_repeat) * scale
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
        "seed_repeat": args.seed_repeat,
        "head_ms": head_ms,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "rows": rows,
    }
    (RESULTS / "codec_speed.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
