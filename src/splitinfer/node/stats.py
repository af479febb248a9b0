"""Numbers a node keeps about itself: latency percentiles, frame rates, and how its layers run against their
profile. Pure logic, no MQTT. Part of the node runtime: Python 3.8-compatible.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple

__all__ = ["Calibration", "LatencyStats", "Rate", "percentile"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence (the one percentile of splitinfer)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LatencyStats:
    """The most recent ``window`` samples of each named stage; p50/p99 over them."""

    def __init__(self, window: int = 512) -> None:
        self.window = window
        self._samples: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, value: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self.window)).append(float(value))

    def add_all(self, values: Dict[str, float]) -> None:
        for stage, value in values.items():
            self.add(stage, value)

    def summary(self) -> Dict[str, Dict[str, float]]:
        with self._lock:
            snapshot = {k: sorted(v) for k, v in self._samples.items() if v}
        return {k: {"p50": round(percentile(v, 0.50), 3), "p99": round(percentile(v, 0.99), 3)}
                for k, v in snapshot.items()}


class Calibration:
    """How much slower (or faster) the layers run in service than in the profile: the median of observed /
    profiled times over the last ``window`` frames. The node reports it (``head_scale``/``tail_scale`` in its
    profile) when it moves by more than ``fraction``; the cost model multiplies the profile's layer times by it.
    Contention (a capture thread, other processes), thermal throttling or clocks are what it catches."""

    def __init__(self, *, window: int = 32, every: int = 8, fraction: float = 0.1) -> None:
        self.window, self.every, self.fraction = window, every, fraction
        self._ratios: Deque[float] = deque(maxlen=window)
        self._since = 0
        self.reported = 1.0

    def reset(self) -> None:
        self._ratios.clear()
        self._since = 0

    def add(self, observed_ms: float, profiled_ms: float) -> Optional[float]:
        """Add one frame; the new scale when it should be reported, else None."""
        if profiled_ms <= 0.05 or observed_ms <= 0:
            return None
        self._ratios.append(observed_ms / profiled_ms)
        self._since += 1
        if self._since < self.every or len(self._ratios) < self.every:
            return None
        self._since = 0
        scale = round(sorted(self._ratios)[len(self._ratios) // 2], 3)
        if abs(scale - self.reported) <= self.fraction * self.reported:
            return None
        self.reported = scale
        return scale


class Rate:
    """Frames per second over the last few seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._events: List[Tuple[float, int]] = []

    def tick(self, n: int = 1) -> None:
        now = time.monotonic()
        self._events.append((now, n))
        while self._events and self._events[0][0] < now - self.window:
            self._events.pop(0)

    def value(self) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in self._events if t >= now - self.window]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0][0], 1e-6)
        return round(sum(n for _, n in recent) / span, 2)
