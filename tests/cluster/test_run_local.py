"""run --local's accounting: a tail that falls far behind is waited for while it makes progress, and given up
on (with what arrived written out) when it makes none; the delivered fps of frames that arrive in one batch."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from splitinfer.cluster.processes import Processes
from splitinfer.cluster.run_local import LocalRun, delivered_fps, run_local
from splitinfer.errors import ProcessError

pytestmark = [pytest.mark.model, pytest.mark.mosquitto, pytest.mark.slow]


class PauseTail:
    """on_tick: stop the tail (SIGSTOP) at its first detection, start it again (SIGCONT) ``seconds`` later."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.detected = 0
        self.paused_at = 0.0
        self.pid = 0

    def progress(self, detected: int, total: object) -> None:
        self.detected = detected

    def tick(self, procs: Processes) -> None:
        if not self.pid and self.detected and "tail" in procs:
            self.pid, self.paused_at = procs["tail"].pid, time.monotonic()
            os.kill(self.pid, signal.SIGSTOP)
            threading.Timer(self.seconds, _resume, (self.pid,)).start()


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the run may have stopped the tail already
        os.kill(pid, signal.SIGCONT)


def _job(tmp_path: Path, **kwargs: Any) -> LocalRun:
    return LocalRun(model="yolov8n.yaml", source="synthetic:24", frames=24, imgsz=128, out=tmp_path / "out",
                    annotate=False, head_args=["--no-profile"], tail_args=["--no-profile"], **kwargs)


def test_a_tail_that_pauses_longer_than_any_quiet_period_still_gets_every_frame_counted(tmp_path: Path) -> None:
    pause = PauseTail(6.0)  # the old collector gave up after 3 s of quiet
    summary = run_local(_job(tmp_path), on_tick=pause.tick, on_progress=pause.progress)
    assert pause.pid, "the tail was never paused"
    assert summary["frames"] == summary["frames_sent"] == 24 and summary["dropped"] == 0
    assert summary["drops"] == {"head": 0, "tail": 0}
    assert summary["wall_s"] > 6.0


def test_a_stuck_tail_is_given_up_on_after_the_stall_time_with_what_arrived_written(tmp_path: Path) -> None:
    pause = PauseTail(12.0)  # longer than the stall: the run gives up, then the tail is let go and stopped
    started = time.monotonic()
    with pytest.raises(ProcessError, match=r"the tail made no progress for 3 s with \d+ of 24 frames outstanding"):
        # paced, so frames are still coming when the tail stops (unpaced, a fast tail may finish them all first)
        run_local(_job(tmp_path, stall=3.0, fps=8.0), on_tick=pause.tick, on_progress=pause.progress)
    assert time.monotonic() - started < 60
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert 1 <= len(lines) < 24 and json.loads(lines[0])["head"] == "head-1"


def test_delivered_fps_of_frames_arriving_in_one_batch_is_not_infinite() -> None:
    # eight frames captured 0.5 s apart, all detected in one tail batch 0.1 s after the last capture
    records: List[Dict[str, Any]] = [{"timestamp": 100.0 + 0.5 * k, "_received": 103.6} for k in range(8)]
    assert delivered_fps(records) == pytest.approx(8 / 3.6, abs=0.01)
    assert delivered_fps([{"timestamp": 5.0, "_received": 5.0}]) == 1000.0  # floored at 1 ms, never a division by 0
    assert delivered_fps([]) is None
