"""Memory of the head and tail over a long run with the tail slower than the head (issue target: RSS flat within
±10 % over 1,000 frames).

    splitctl bench soak [--frames 1000] [--imgsz 320] [--cut a]

The tail runs on one thread with a small queue, so it falls behind and drops (counted). RSS of both node
processes is sampled about every 0.2 s with the number of detections received so far; "start" is the median of
the samples taken while detections 50..150 arrived (models loaded, first frames through: warm), "end" the median
of the last 10 % of the samples. Prints and writes bench/results/soak.json.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from splitinfer.cluster.processes import Processes
from splitinfer.cluster.run_local import LocalRun, run_local

__all__ = ["run_soak"]


def run_soak(model: str = "yolo11n.yaml", *, frames: int = 1000, imgsz: int = 320, cut: str = "a",
             bits: int = 4) -> Dict[str, Any]:
    """Run ``frames`` through a slow tail, sampling both nodes' RSS; the figures as data."""
    import psutil

    samples: Dict[str, List[float]] = {"head": [], "tail": []}
    counts: Dict[str, List[int]] = {"head": [], "tail": []}
    received = [0]

    def progress(n: int, total: object) -> None:
        received[0] = n

    def tick(procs: Processes) -> None:
        for name in samples:
            if name not in procs:
                continue
            with contextlib.suppress(psutil.Error):  # the process may have just finished
                samples[name].append(psutil.Process(procs[name].pid).memory_info().rss / 2**20)
                counts[name].append(received[0])

    with tempfile.TemporaryDirectory() as out:
        summary = run_local(LocalRun(model=model, source=f"synthetic:{frames}", frames=frames, cut=cut, bits=bits,
                                     calibrate=False, imgsz=imgsz, out=Path(out), annotate=False, tail_batch=1,
                                     head_args=["--threads", "1"], tail_args=["--threads", "1", "--queue", "8"]),
                            on_tick=tick, on_progress=progress)
    result: Dict[str, Any] = {"model": model, "frames_captured": summary["frames_captured"],
                              "frames_detected": summary["frames"], "dropped": summary["dropped"],
                              "cut": summary["cut"], "imgsz": imgsz, "rss_mb": {}}
    for name, values in samples.items():
        tenth = max(1, len(values) // 10)
        warm = [v for v, n in zip(values, counts[name]) if 50 <= n < 150] or values[tenth:2 * tenth]
        start, end = statistics.median(warm), statistics.median(values[-tenth:])
        result["rss_mb"][name] = {"start": round(start, 1), "end": round(end, 1), "max": round(max(values), 1),
                                  "change": round((end - start) / start, 4), "samples": len(values)}
    result["target_met"] = all(abs(v["change"]) <= 0.10 for v in result["rss_mb"].values())
    return result
