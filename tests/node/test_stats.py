"""The one percentile, and the numbers a node keeps about itself."""

from __future__ import annotations

import time

from splitinfer.node.stats import Calibration, LatencyStats, Rate, percentile


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 51
    assert percentile(values, 0.99) == 100
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.0) == 1.0


def test_latency_stats_keep_a_window_per_stage() -> None:
    stats = LatencyStats(window=4)
    for v in (100, 1, 2, 3, 4):
        stats.add("head_ms", v)
    stats.add_all({"encode_ms": 5.0})
    summary = stats.summary()
    assert summary["head_ms"] == {"p50": 3.0, "p99": 4.0}  # the 100 fell out of the window
    assert summary["encode_ms"] == {"p50": 5.0, "p99": 5.0}


def test_rate_counts_frames_per_second_over_its_window() -> None:
    rate = Rate(window=5.0)
    assert rate.value() == 0.0
    for _ in range(5):
        rate.tick(2)
        time.sleep(0.02)
    assert rate.value() > 50


def test_calibration_reports_a_scale_only_when_it_moves() -> None:
    cal = Calibration(window=8, every=4, fraction=0.1)
    assert [cal.add(10.0, 10.0) for _ in range(4)] == [None] * 4  # 1.0: no change from the reported 1.0
    reported = [cal.add(20.0, 10.0) for _ in range(8)]
    assert reported[-1] == 2.0 or 2.0 in reported
    assert cal.reported == 2.0
    assert cal.add(1.0, 0.01) is None  # too small a profiled time to say anything
