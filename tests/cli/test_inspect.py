from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()


@pytest.mark.model
def test_inspect_json_reports_live_sets_and_sizes() -> None:
    result = runner.invoke(app, ["inspect", "yolo11n.yaml", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["presets"] == {"a": 4, "b": 11, "c": 17, "d": 23}
    cuts = {c["cut"]: c for c in data["cuts"]}
    assert cuts[11]["live"] == [4, 6, 10] and cuts[11]["preset"] == "b"
    assert cuts[11]["values"] == 128 * 80 * 80 + 128 * 40 * 40 + 256 * 20 * 20  # 1.13 M, as DESIGN.md says
    assert cuts[11]["bytes_4bit"] * 8 == cuts[11]["bytes_fp32"]
    assert data["frame_bytes"] == 3 * 640 * 640
    assert len(data["layers"]) == 24 and data["layers"][23]["type"] == "Detect"


@pytest.mark.model
def test_inspect_table_marks_presets() -> None:
    result = runner.invoke(app, ["inspect", "yolov8n.yaml", "--imgsz", "320"])
    assert result.exit_code == 0, result.output
    assert "Detect" in result.stdout and "4,6,9" in result.stdout


def test_inspect_missing_model_is_a_clear_error() -> None:
    result = runner.invoke(app, ["inspect", "nowhere/best.pt"])
    assert result.exit_code == 1
    assert "model file not found" in result.output
    assert "Traceback" not in result.output


def test_inspect_bad_imgsz() -> None:
    result = runner.invoke(app, ["inspect", "yolov8n.yaml", "--imgsz", "100"])
    assert result.exit_code == 1 and "multiple of the model's stride" in result.output


def test_help_and_version() -> None:
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("splitctl ")
