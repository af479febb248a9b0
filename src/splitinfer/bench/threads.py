"""``splitctl bench threads``: a head step and a tail step on one torch thread against every core.

    splitctl bench threads                         # yolo11n.yaml at 640, cut b, 1 thread vs all cores
    splitctl bench threads --threads 1,2,4 --model "$(scripts/fetch-weights)"

What ``splitctl node --threads`` changes: ``--threads 0`` (the default) gives torch every core the process may
use, where importing Ultralytics alone would leave it one. Each time is the median of ``--repeat`` calls in the
least-disturbed of ``--rounds`` rounds over all thread counts (see :func:`.codec_speed.timed`). Prints a table
and writes bench/results/threads.json; never fails on a timing.
"""

from __future__ import annotations

import platform
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .codec_speed import timed

__all__ = ["run_threads_bench"]


def run_threads_bench(
    model_path: str = "yolo11n.yaml", *, cut: str = "b", imgsz: int = 640, counts: Optional[Sequence[int]] = None,
    repeat: int = 10, rounds: int = 3,
) -> Dict[str, Any]:
    """Head and tail compute in ms at each thread count (default: 1 and every core); the result as plain data."""
    import torch

    from splitinfer.node.threads import cores, set_threads
    from splitinfer.splitting import load_model, split

    available = cores()
    chosen = sorted(set(counts or (1, available)))
    previous = torch.get_num_threads()
    model = load_model(model_path)
    head, tail = split(model, cut)
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    features = head(x)

    def at(count: int, step: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            set_threads(count)  # free once the count is set; rounds switch between counts
            return step()

        return run

    jobs: Dict[str, Tuple[Callable[[], Any], int]] = {}
    for count in chosen:
        jobs[f"head@{count}"] = (at(count, lambda: head(x)), repeat)
        jobs[f"tail@{count}"] = (at(count, lambda: tail(features)), repeat)
    try:
        ms = timed(jobs, rounds)
    finally:
        set_threads(previous)
    base = chosen[0]
    rows = [{"threads": n, "head_ms": round(ms[f"head@{n}"], 2), "tail_ms": round(ms[f"tail@{n}"], 2),
             "head_speedup": round(ms[f"head@{base}"] / ms[f"head@{n}"], 2),
             "tail_speedup": round(ms[f"tail@{base}"] / ms[f"tail@{n}"], 2)} for n in chosen]
    return {"model": model_path, "cut": cut, "layer": head.cut, "imgsz": imgsz, "cores": available,
            "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "repeat": repeat,
            "rounds": rounds, "rows": rows}
