"""A short real ``bench e2e``: one shaped link with a delay, the head on a CPU budget, three modes, a few frames,
real nodes in namespaces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from splitinfer.bench.budget import budget_unavailable_reason, find_cpu_hierarchy
from splitinfer.bench.e2e import E2EOptions, LinkSpec, run_e2e
from splitinfer.bench.netns import netns_unavailable_reason
from splitinfer.broker.local import find_mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.mosquitto]


def test_a_short_bench_run_writes_its_results(tmp_path: Path) -> None:
    reason = netns_unavailable_reason() or (None if find_mosquitto() else "mosquitto is not installed")
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    budget = None if budget_unavailable_reason() else 0.5  # where no cgroup can be made: an unconstrained head
    opts = E2EOptions(model="yolo11n.yaml", imgsz=160, links=[LinkSpec(20.0, 10.0)], budgets=[budget],
                      modes=["local", "a", "auto"], frames=3, warmup=1, out=tmp_path, timeout=120)
    result = run_e2e(opts)
    rows = {r["config"]: r for r in result["rows"]}
    assert set(rows) == {"local", "a", "auto"}
    a, local = rows["a"], rows["local"]
    assert (a["mode"], a["cut"], a["frames"], a["budget_cores"]) == ("split", 4, 3, budget)
    assert a["p50_ms"] > 5.0  # at least the relay's 5 ms one way
    assert a["predicted_ms"] and a["bytes_per_frame"] > 0 and a["fps"] > 0
    assert a["reported_p50_ms"]  # the nodes' own figure, beside the one read off this machine's clock
    assert (local["mode"], local["link_mbit"], local["bytes_per_frame"]) == ("local", None, 0) and local["p50_ms"]
    assert rows["auto"]["reason"].startswith("auto: lowest predicted latency")
    assert not any(r["notes"] for r in result["rows"]), [r["notes"] for r in result["rows"]]  # profiles were warm
    assert any("relay" in note for note in result["notes"])
    [summary] = json.loads((tmp_path / "e2e.json").read_text())["summary"]
    assert summary["auto_choice"] is not None and summary["best"] in rows
    assert (tmp_path / "e2e.csv").read_text().startswith("budget_cores,link_mbit,rtt_ms,config")
    assert (tmp_path / "e2e.png").stat().st_size > 1000
    hierarchy = find_cpu_hierarchy()
    if hierarchy is not None:  # the budget's cgroup is gone
        assert not [p for p in hierarchy[1].iterdir() if p.name.startswith(f"splitinfer-budget-{os.getpid()}-")]
