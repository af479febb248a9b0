from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from splitinfer.cli.app import app
from splitinfer.cluster.run_local import CSV_COLUMNS

from .streams import both, cli_runner

runner = cli_runner()


@pytest.mark.model
@pytest.mark.mosquitto
@pytest.mark.slow
def test_run_local_falls_back_to_random_weights_and_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--local", "--frames", "4", "--imgsz", "128", "--out", str(out), "--json"])
    assert result.exit_code == 0, both(result)
    summary = json.loads(result.stdout)
    assert {"frames", "fps", "e2e_ms_p50", "e2e_ms_p99", "payload_bytes_mean", "dropped"} <= set(summary)
    assert summary["frames"] + summary["dropped"] == 4
    assert summary["model"] == "yolo11n.yaml" and "random weights" in result.stderr
    rows = list(csv.DictReader((out / "output.csv").read_text().splitlines()))
    assert len(rows) == summary["frames"] and tuple(rows[0]) == CSV_COLUMNS
    assert all(float(r["e2e_ms"]) > 0 for r in rows)
    assert len((out / "detections.jsonl").read_text().splitlines()) == summary["frames"]
    assert len(list((out / "frames").glob("*.jpg"))) == summary["frames"]


def test_run_without_local_says_what_to_do() -> None:
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1 and "only --local is supported" in both(result)


@pytest.mark.model
def test_run_local_reports_a_bad_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--local", "--source", str(tmp_path / "missing"), "--model", "yolov8n.yaml",
                                 "--imgsz", "64", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "head process failed" in both(result)
    assert "no such file or folder" in (tmp_path / "out" / "logs" / "head.log").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cut", "zz"], "unknown cut 'zz'"),
        (["--cut", "99"], "cut 99 is out of range"),
        (["--bits", "9"], "bits must be 2..8"),
        (["--model", "nope.pt"], "nope.pt: model file not found"),
        (["--imgsz", "100"], "multiple of the model's stride"),
    ],
)
def test_run_local_refuses_bad_settings_before_starting_anything(tmp_path: Path, args: list, message: str) -> None:
    result = runner.invoke(app, ["run", "--local", "--model", "yolov8n.yaml", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 1 and message in both(result), both(result)
    assert not (tmp_path / "o" / "logs").exists()  # no process was started
