"""``splitctl calibrate`` and the calibrated codec in ``run --local``, on the realistic checkpoint and the two
photographs Ultralytics ships."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splitinfer.cli.app import app
from splitinfer.codec.table import CalibrationTable
from splitinfer.splitting.model import file_sha256

from .streams import both, cli_runner

runner = cli_runner()
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def assets() -> str:
    import ultralytics

    return str(Path(ultralytics.__file__).parent / "assets")


def test_calibrate_writes_a_table_per_cut_and_the_lines_for_fleet_yaml(tmp_path: Path, checkpoint: str,
                                                                        assets: str) -> None:
    result = runner.invoke(app, ["calibrate", checkpoint, "--frames", assets, "--cut", "d", "--cut", "9",
                                 "--imgsz", "320", "--count", "2", "-o", str(tmp_path), "--json"])
    assert result.exit_code == 0, both(result)
    report = json.loads(result.stdout)
    assert report["frames"] == 2 and report["imgsz"] == 320
    (d, nine) = report["tables"]
    assert Path(d["path"]).name == "fall-detection-yolov8s-d-320.npz" and d["layer"] == 22
    assert Path(nine["path"]).name == "fall-detection-yolov8s-9-320.npz" and nine["layer"] == 9
    table = CalibrationTable.load(d["path"])
    assert (table.cut, table.imgsz, table.hexdigest) == (22, 320, d["digest"])
    assert file_sha256(d["path"]) == d["sha256"]
    human = runner.invoke(app, ["calibrate", checkpoint, "--frames", assets, "--cut", "d", "--imgsz", "320",
                                "--count", "1", "-o", str(tmp_path / "h")])
    assert human.exit_code == 0, both(human)
    assert f'sha256: "{file_sha256(tmp_path / "h" / "fall-detection-yolov8s-d-320.npz")}"' in human.stdout


def test_calibrate_says_what_is_wrong_in_one_line(tmp_path: Path, checkpoint: str) -> None:
    result = runner.invoke(app, ["calibrate", checkpoint, "--frames", str(tmp_path / "nothing"), "-o", str(tmp_path)])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    result = runner.invoke(app, ["calibrate", checkpoint, "--frames", "synthetic:2", "--cut", "zz", "-o",
                                 str(tmp_path)])
    assert result.exit_code == 1 and "zz" in result.stderr


@pytest.mark.mosquitto
@pytest.mark.slow
def test_run_local_calibrates_on_its_source_and_sends_fewer_bytes(tmp_path: Path, checkpoint: str,
                                                                 assets: str) -> None:
    def run(*extra: str) -> dict:
        out = tmp_path / f"out{len(extra)}"
        result = runner.invoke(app, ["run", "--local", "--model", checkpoint, "--source", assets, "--imgsz", "320",
                                     "--cut", "d", "--no-annotate", "--out", str(out), "--json", *extra])
        assert result.exit_code == 0, both(result)
        return dict(json.loads(result.stdout))

    calibrated, plain = run(), run("--no-calibrate")
    assert calibrated["frames"] == plain["frames"] == 2
    assert [Path(t).name for t in calibrated["tables"]] == ["fall-detection-yolov8s-d-320.npz"]
    assert any("calibrated on the first 2 frame(s)" in note for note in calibrated["notes"])
    assert plain["tables"] == [] and plain["bits"] == 4
    assert calibrated["payload_bytes_mean"] < 0.5 * plain["payload_bytes_mean"]
    given = run("--table", calibrated["tables"][0], "--quality", "30")  # a table given: used, not measured again
    assert [Path(t).name for t in given["tables"]] == ["fall-detection-yolov8s-d-320.npz"]
    assert not any("calibrated" in note for note in given["notes"])
    assert given["payload_bytes_mean"] < calibrated["payload_bytes_mean"]
