from __future__ import annotations

import csv
import json
import time
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
    assert summary["frames"] == 4 and summary["dropped"] == 0 and summary["frames_sent"] == 4
    assert summary["model"] == "yolo11n.yaml"
    # said first, in one line, before anything started (the progress line only goes to a terminal)
    first, *rest = result.stderr.splitlines()
    assert first.startswith("warning: yolo11n.pt is not on this machine") and "random weights" in first
    assert "random weights" not in "".join(rest)
    rows = list(csv.DictReader((out / "output.csv").read_text().splitlines()))
    assert len(rows) == summary["frames"] and tuple(rows[0]) == CSV_COLUMNS
    assert all(float(r["e2e_ms"]) > 0 for r in rows)
    assert len((out / "detections.jsonl").read_text().splitlines()) == summary["frames"]
    assert len(list((out / "frames").glob("*.jpg"))) == summary["frames"]


@pytest.mark.model
@pytest.mark.mosquitto
@pytest.mark.slow
def test_a_folder_at_fps_0_is_detected_frame_by_frame_with_cut_auto(tmp_path: Path, image_folder: Path) -> None:
    """Every frame of a finite source counts, and auto is planned by the coordinator from the nodes' profiles."""
    import shutil

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(3):  # 12 frames
        for image in image_folder.iterdir():
            shutil.copy(image, folder / f"{k}-{image.name}")
    result = runner.invoke(app, ["run", "--local", "--model", "yolov8n.yaml", "--imgsz", "160", "--source",
                                 str(folder), "--frames", "0", "--cut", "auto", "--no-annotate", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, both(result)
    text = " ".join(result.stdout.split())
    assert "cut auto (layer" in text and "12 of 12 frames detected (0 dropped)" in text
    assert "random weights" not in both(result)  # a .yaml asked for by name is not a fallback


def test_run_without_local_says_what_to_do() -> None:
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1 and "only --local is supported" in both(result)


def test_run_local_refuses_a_missing_source_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    started = time.monotonic()
    result = runner.invoke(app, ["run", "--local", "--source", str(missing), "--out", str(tmp_path / "out")])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert "no such file or folder" in both(result) and both(result).count(str(missing)) == 1, both(result)
    assert elapsed < 5, elapsed
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cut", "zz"], "unknown cut 'zz'"),
        (["--bits", "9"], "bits must be 2..8"),
        (["--source", "synthetic:x"], "expected synthetic or synthetic:N"),
    ],
)
def test_run_local_refuses_bad_settings_before_loading_the_model(tmp_path: Path, args: list, message: str) -> None:
    result = runner.invoke(app, ["run", "--local", "--model", "no-such-model.pt", "--out", str(tmp_path / "o"),
                                 *args])
    assert result.exit_code == 1 and message in both(result), both(result)  # not the model's error
    assert both(result).count("error:") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.model
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cut", "99"], "cut 99 is out of range"),
        (["--model", "nope.pt"], "nope.pt: model file not found"),
        (["--imgsz", "100"], "multiple of the model's stride"),
    ],
)
def test_run_local_refuses_bad_settings_before_starting_anything(tmp_path: Path, args: list, message: str) -> None:
    result = runner.invoke(app, ["run", "--local", "--model", "yolov8n.yaml", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 1 and message in both(result), both(result)
    assert not (tmp_path / "o" / "logs").exists()  # no process was started
