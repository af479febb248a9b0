"""The smaller `splitctl bench` subcommands through the Typer app: each prints and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app


def test_bench_frames_writes_the_24_frame_set(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "frames", "--out", str(tmp_path / "frames")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "frames").glob("*.png"))) == 24


@pytest.mark.mosquitto
def test_bench_broker_prints_json_and_writes_it(tmp_path: Path) -> None:
    from splitinfer.broker.local import find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    out = tmp_path / "b.json"
    result = CliRunner().invoke(app, ["bench", "broker", "--kinds", "mosquitto", "--n", "3", "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["bytes"] for r in data["rows"]] == [1_000, 150_000, 1_000_000, 6_000_000]
    assert all(r["broker"] == "mosquitto" and r["p50_ms"] > 0 for r in data["rows"])


def test_bench_codec_speed_refuses_malformed_bits() -> None:
    result = CliRunner().invoke(app, ["bench", "codec-speed", "--bits", "2,x"])
    assert result.exit_code == 1 and "expected integers" in result.output


@pytest.mark.model
def test_bench_threads_times_head_and_tail_per_thread_count(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    result = CliRunner().invoke(app, ["bench", "threads", "--model", "yolov8n.yaml", "--imgsz", "64", "--threads",
                                      "2,1", "--repeat", "1", "--rounds", "1", "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["threads"] for r in data["rows"]] == [1, 2] and data["layer"] == 10
    assert all(r["head_ms"] > 0 and r["tail_ms"] > 0 for r in data["rows"])
    assert data["rows"][0]["head_speedup"] == 1.0
    bad = CliRunner().invoke(app, ["bench", "threads", "--threads", "0"])
    assert bad.exit_code == 1 and "counts must be ≥ 1" in bad.output


@pytest.mark.mosquitto
@pytest.mark.model
def test_bench_startup_times_real_nodes_with_a_model_file(tmp_path: Path) -> None:
    """A model given as a file is assigned as run --local does (its folder, its name): nodes refuse a path."""
    import shutil

    from ultralytics.utils import ROOT

    model = tmp_path / "models" / "yolov8n.yaml"
    model.parent.mkdir()
    shutil.copy(ROOT / "cfg" / "models" / "v8" / "yolov8.yaml", model)  # scale n, read off the name
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["bench", "startup", "--model", str(model), "--imgsz", "64", "--rounds", "2",
                                      "--threads", "1", "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["cache"] for r in data["rounds"]] == ["cold", "warm"]
    assert all(r["tail_ready_s"] > 0 and r["head_first_frame_s"] > 0 for r in data["rounds"])
