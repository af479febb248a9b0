"""Memory of the head and tail over a long run with the tail slower than the head (issue target: RSS flat within
±10 % over 1,000 frames).

    python bench/rss_soak.py [--frames 1000] [--imgsz 320] [--cut a]

The tail runs on one thread with a small queue, so it falls behind and drops (counted). RSS of both node
processes is sampled about every 0.2 s with the number of detections received so far; "start" is the median of
the samples taken while detections 50..150 arrived (models loaded, first frames through: warm), "end" the median
of the last 10 % of the samples. Prints and writes bench/results/rss_soak.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from pathlib import Path
from typing import Dict, List

from splitinfer.local import LocalRun, run_local


def main() -> None:
    import psutil

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--cut", default="a")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--output", default="bench/results/rss_soak.json")
    args = parser.parse_args()
    samples: Dict[str, List[float]] = {"head": [], "tail": []}
    counts: Dict[str, List[int]] = {"head": [], "tail": []}
    received = [0]

    def progress(n: int, total: object) -> None:
        received[0] = n

    def tick(procs: Dict) -> None:
        for name in samples:
            with contextlib.suppress(psutil.Error):  # the process may have just finished
                samples[name].append(psutil.Process(procs[name].pid).memory_info().rss / 2**20)
                counts[name].append(received[0])

    with tempfile.TemporaryDirectory() as out:
        summary = run_local(LocalRun(model=args.model, source=f"synthetic:{args.frames}", frames=args.frames,
                                     cut=args.cut, bits=args.bits, imgsz=args.imgsz, out=Path(out), annotate=False,
                                     tail_batch=1, head_args=["--threads", "1"],
                                     tail_args=["--threads", "1", "--queue", "8"]), on_tick=tick,
                             on_progress=progress)
    result = {"model": args.model, "frames_captured": summary["frames_captured"], "frames_detected": summary["frames"],
              "dropped": summary["dropped"], "cut": summary["cut"], "imgsz": args.imgsz, "rss_mb": {}}
    for name, values in samples.items():
        tenth = max(1, len(values) // 10)
        warm = [v for v, n in zip(values, counts[name]) if 50 <= n < 150] or values[tenth:2 * tenth]
        start, end = statistics.median(warm), statistics.median(values[-tenth:])
        result["rss_mb"][name] = {"start": round(start, 1), "end": round(end, 1), "max": round(max(values), 1),
                                  "change": round((end - start) / start, 4), "samples": len(values)}
    result["target_met"] = all(abs(v["change"]) <= 0.10 for v in result["rss_mb"].values())
    print(json.dumps(result, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
