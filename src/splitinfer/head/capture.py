"""Capture on its own thread: the camera never waits on the network.

``fps > 0`` paces file sources like a camera and keeps only the freshest frames (stale ones are dropped and
counted). ``fps == 0`` reads as fast as the head takes frames, dropping none (for benchmarks over a file).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, List, Optional, Tuple

from .sources import Frame, open_source

__all__ = ["Grabber"]


class Grabber:
    def __init__(self, source: str, *, fps: float, capacity: int, limit: Optional[int] = None, loop: bool = False):
        self.source = source
        self.fps = fps
        self.capacity = max(1, capacity)
        self.limit = limit
        self.loop = loop
        self.captured = 0
        self.dropped = 0
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self._frames: Deque[Tuple[Frame, float, float]] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> Grabber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        next_due = time.monotonic()
        try:
            frames = open_source(self.source, limit=self.limit, loop=self.loop)
            while not self._stop.is_set():
                t = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                self._put(frame, time.time(), (time.perf_counter() - t) * 1000.0)
                if period:
                    next_due += period
                    time.sleep(max(0.0, next_due - time.monotonic()))
        except Exception as exc:  # reported by the node, which decides what to do
            self.error = exc
        finally:
            self.done.set()
            with self._cond:
                self._cond.notify_all()

    def _put(self, frame: Frame, wall: float, capture_ms: float) -> None:
        with self._cond:
            if self.fps <= 0:  # lossless: wait for room
                self._cond.wait_for(lambda: len(self._frames) < self.capacity or self._stop.is_set())
            elif len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append((frame, wall, capture_ms))
            self.captured += 1
            self._cond.notify_all()

    def take(self, n: int, timeout: float) -> List[Tuple[Frame, float, float]]:
        """Up to ``n`` frames, oldest first, waiting up to ``timeout`` for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._frames or self.done.is_set() or self._stop.is_set(), timeout)
            out = [self._frames.popleft() for _ in range(min(n, len(self._frames)))]
            self._cond.notify_all()
            return out

    @property
    def exhausted(self) -> bool:
        with self._cond:
            return self.done.is_set() and not self._frames
