"""What became of the frames a head sent: each is acknowledged by its tail's detection record (the head reads its
own ``detections/<id>`` topic), or counted lost when none came after ``lost_after`` seconds (or four times the
typical acknowledgement delay, when the tail is slow); an acknowledgement that comes later still takes the frame
back from the lost. Pure logic, no MQTT.

The same records time the clocks: a record carries the head's send time, the tail's receive time and the tail's
publish time, and the head notes when it arrived, so the offset between the two clocks is estimated as NTP does
(``((received - sent) + (published - arrived)) / 2``, from the sample with the shortest round trip), without
trusting either clock. The head sends that estimate with its features, so the tail's latencies stay right when
clocks disagree.

Records come from the network: anything malformed is ignored, never raised.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from typing import Any, Deque, Dict, Iterable, Mapping, Optional, Tuple

__all__ = ["Delivery"]


class Delivery:
    def __init__(self, *, lost_after: float = 5.0, silent_after: float = 3.0, window: int = 8192,
                 samples: int = 32) -> None:
        self.lost_after, self.silent_after, self.window = lost_after, silent_after, window
        self._pending: OrderedDict[int, float] = OrderedDict()  # seq -> monotonic time sent
        self._lost: OrderedDict[int, None] = OrderedDict()  # recently given up on: a late ack takes it back
        self._delays: Deque[float] = deque(maxlen=64)  # seconds from sending to its acknowledgement
        self._samples: Deque[Tuple[float, float]] = deque(maxlen=samples)  # (round trip, offset) in seconds
        self.sent = self.acked = self.lost = self.unexpected = 0
        self.last_ack: Optional[float] = None  # monotonic

    def note_sent(self, seqs: Iterable[int], now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        for seq in seqs:
            self._pending[int(seq)] = now
            self.sent += 1
        while len(self._pending) > self.window:  # more in flight than we track: count the oldest as lost
            self._pending.popitem(last=False)
            self.lost += 1

    def note_record(self, record: Any, arrived_wall: float, now: Optional[float] = None) -> bool:
        """Count one detection record of ours; True when it acknowledged a frame we are waiting for."""
        now = time.monotonic() if now is None else now
        if not isinstance(record, Mapping):
            self.unexpected += 1
            return False
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.unexpected += 1
            return False
        sent = self._pending.pop(seq, None)
        if sent is None:
            if self._lost.pop(seq, "absent") is None:  # late, not lost after all
                self.lost -= 1
                self.acked += 1
                return True
            self.unexpected += 1  # a frame we did not send, or already counted
            return False
        self._delays.append(now - sent)
        self.acked += 1
        self.last_ack = now
        self._time_clocks(record.get("clock"), arrived_wall)
        return True

    def _time_clocks(self, clock: Any, arrived: float) -> None:
        if not isinstance(clock, Mapping):
            return
        values = [clock.get(k) for k in ("sent", "received", "published")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return
        sent, received, published = (float(v) for v in values if v is not None)
        round_trip = (arrived - sent) - (published - received)
        if round_trip < 0 or published < received:
            return
        self._samples.append((round_trip, ((received - sent) + (published - arrived)) / 2.0))

    @property
    def clock_offset_ms(self) -> float:
        """The tail's clock minus ours, in ms, from the fastest recent round trip (0 until one is measured)."""
        if not self._samples:
            return 0.0
        return round(min(self._samples)[1] * 1000.0, 3)

    def expire(self, now: Optional[float] = None) -> int:
        """Count frames unacknowledged for ``lost_after`` seconds (or 4 × the typical delay) as lost; return how
        many just were."""
        now = time.monotonic() if now is None else now
        typical = sorted(self._delays)[len(self._delays) // 2] if self._delays else 0.0
        limit = max(self.lost_after, 4.0 * typical)
        gone = 0
        while self._pending:
            seq, at = next(iter(self._pending.items()))
            if now - at < limit:
                break
            self._pending.popitem(last=False)
            self._lost[seq] = None
            gone += 1
        while len(self._lost) > self.window:
            self._lost.popitem(last=False)
        self.lost += gone
        return gone

    def silent(self, now: Optional[float] = None) -> bool:
        """Whether the tail has stopped answering: a frame has waited ``silent_after`` seconds and no
        acknowledgement came in that time."""
        now = time.monotonic() if now is None else now
        if not self._pending:
            return False
        waited = now - next(iter(self._pending.values()))  # the oldest frame still waiting
        quiet = self.last_ack is None or now - self.last_ack >= self.silent_after
        return waited >= self.silent_after and quiet

    def new_route(self, now: Optional[float] = None) -> None:
        """A new tail gets ``silent_after`` seconds before its silence counts (frames in flight to the old one stay
        pending: it may still answer)."""
        self.last_ack = time.monotonic() if now is None else now

    def counts(self) -> Dict[str, Any]:
        return {"frames_acked": self.acked, "frames_lost": self.lost, "in_flight": len(self._pending),
                "clock_offset_ms": self.clock_offset_ms}
