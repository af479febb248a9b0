"""Graceful degradation: when to run the whole model on the head instead of the planned mode. Pure logic.

A head planned to split or offload falls back to ``local`` by itself, within a few seconds and without any
configuration (an operator can forbid it per device), when

- it has no live tail (its assignment has no route),
- its tail stopped answering (no acknowledgement for a while: see :mod:`.delivery`), or
- its link cannot carry its frames (most recent publishes refused by the full outgoing queue).

In the last two cases it keeps sending one frame in the planned mode every ``probe_every`` seconds, and goes
back to the planned mode as soon as the tail answers again or the link takes frames again; a new route from
the coordinator (a live tail) ends any fallback at once. The camera never goes blind: the frames it cannot send
are detected where they are, at whatever rate the head sustains (stale frames are dropped, not queued).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Deque, Optional, Tuple

__all__ = ["Fallback"]


class Fallback:
    def __init__(self, *, probe_every: float = 2.0, window: int = 10, refused: int = 5) -> None:
        self.probe_every, self.refused = probe_every, refused
        self._published: Deque[bool] = deque(maxlen=window)
        self._next_probe = 0.0
        self.reason = ""

    def published(self, ok: bool) -> None:
        """The outcome of one publish in the planned mode."""
        self._published.append(ok)
        if ok and self.reason.startswith("the link"):
            self._published.clear()

    def new_route(self) -> None:
        self._published.clear()

    def _overloaded(self) -> bool:
        return sum(1 for ok in self._published if not ok) >= self.refused

    def decide(self, planned: str, *, allowed: bool, route: str, silent: bool,
               now: Optional[float] = None) -> Tuple[str, bool]:
        """(the mode to run this batch in, whether it is a probe of the planned mode); ``reason`` says why a
        fallback is on (empty when none)."""
        now = time.monotonic() if now is None else now
        if planned == "local" or not allowed:
            self.reason = ""
            return planned, False
        if not route:
            self.reason = "no live tail"
            return "local", False
        if silent:
            self.reason = f"tail {route} is not answering"
        elif self._overloaded():
            self.reason = "the link cannot carry the frames"
        else:
            self.reason = ""
            return planned, False
        if now >= self._next_probe:  # one frame in the planned mode, to see whether it works again
            self._next_probe = now + self.probe_every
            return planned, True
        return "local", False
