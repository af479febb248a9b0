"""The capture thread: lossless at fps 0, freshest frames at fps > 0, and errors handed to the node."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from splitinfer.errors import SourceError
from splitinfer.head.capture import Grabber


def _folder(tmp_path: Path, n: int) -> Path:
    for k in range(n):
        cv2.imwrite(str(tmp_path / f"{k:03d}.png"), np.full((16, 16, 3), k, dtype=np.uint8))
    return tmp_path


def _drain(grabber: Grabber, wait: float = 0.0) -> list:
    got = []
    while not grabber.exhausted:
        got += [frame.index for frame, _, _ in grabber.take(1, timeout=0.5)]
        time.sleep(wait)
    return got


def test_fps_zero_drops_nothing_even_when_the_consumer_is_slow(tmp_path: Path) -> None:
    grabber = Grabber(str(_folder(tmp_path, 12)), fps=0, capacity=2).start()
    assert _drain(grabber, wait=0.01) == list(range(12))
    assert grabber.captured == 12 and grabber.dropped == 0 and grabber.error is None


def test_a_paced_source_keeps_the_freshest_frames_and_counts_the_rest(tmp_path: Path) -> None:
    grabber = Grabber(str(_folder(tmp_path, 30)), fps=200, capacity=2).start()
    grabber.done.wait(10)
    got = _drain(grabber)
    assert got == [28, 29]  # nobody took frames while it ran: only the last two are left
    assert grabber.dropped == 28 and grabber.captured == 30


def test_a_source_that_cannot_be_read_is_reported_not_raised_on_the_thread(tmp_path: Path) -> None:
    grabber = Grabber(str(tmp_path / "missing.mp4"), fps=0, capacity=2).start()
    grabber.done.wait(10)
    assert isinstance(grabber.error, SourceError) and grabber.exhausted
