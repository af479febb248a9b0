"""A short real ``bench e2e``: one shaped link, two cuts, a few frames, real nodes in namespaces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from splitinfer.bench.e2e import E2EOptions, run_e2e, summarize
from splitinfer.bench.netns import netns_unavailable_reason
from splitinfer.broker.local import find_mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.mosquitto]


def test_summary_compares_auto_with_the_best_cut_and_the_baselines() -> None:
    rows = [
        {"link_mbit": None, "config": "whole-on-head", "cut": None, "p50_ms": 60.0, "predicted_ms": 58.0},
        {"link_mbit": 5.0, "config": "a", "cut": 4, "p50_ms": 100.0, "predicted_ms": 90.0,
         "predicted_err_pct": -10.0},
        {"link_mbit": 5.0, "config": "auto", "cut": 4, "p50_ms": 105.0, "predicted_ms": 90.0,
         "predicted_err_pct": -14.3},
        {"link_mbit": 5.0, "config": "jpeg", "cut": None, "p50_ms": 80.0, "predicted_ms": None},
    ]
    [s] = summarize(rows)
    assert (s["best_config"], s["auto_cut"], s["auto_vs_best_pct"]) == ("a", 4, 5.0)
    assert s["jpeg_p50_ms"] == 80.0 and s["whole_on_head_p50_ms"] == 60.0 and s["split_beats_both"] is False
    assert s["verdict"] == "split does not beat the baselines"
    rows[0]["p50_ms"], rows[3]["p50_ms"] = 104.0, 95.0  # the better baseline within 10 %: no winner
    assert "no clear winner" in summarize(rows)[0]["verdict"]


def test_a_short_bench_run_writes_its_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = netns_unavailable_reason() or (None if find_mosquitto() else "mosquitto is not installed")
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    monkeypatch.setenv("SPLITINFER_CACHE", str(tmp_path / "cache"))  # profiles measured afresh, by the nodes too
    opts = E2EOptions(model="yolo11n.yaml", imgsz=160, links=[20.0], cuts=["a", "auto"], frames=3, warmup=1,
                      baselines=False, out=tmp_path, timeout=90)
    result = run_e2e(opts)
    rows = {r["config"]: r for r in result["rows"]}
    assert set(rows) == {"a", "auto"}
    assert rows["a"]["cut"] == 4 and rows["a"]["frames"] == 3 and rows["a"]["p50_ms"] > 0
    assert rows["a"]["predicted_ms"] and rows["a"]["bytes_per_frame"] > 0
    assert rows["auto"]["reason"].startswith("auto: lowest predicted latency")
    assert any("netem" in note for note in result["notes"])
    assert json.loads((tmp_path / "e2e.json").read_text())["summary"][0]["auto_cut"] == rows["auto"]["cut"]
    assert (tmp_path / "e2e.csv").read_text().startswith("link_mbit,config,cut")
    assert (tmp_path / "e2e.png").stat().st_size > 1000
