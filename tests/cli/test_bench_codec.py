"""``splitctl bench codec`` through the Typer app: both wire formats, where the calibration table comes from (never
from a measured frame), and the image codecs read off at our fidelity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()

KEYS = {"frames", "bits_per_value", "payload_bytes_mean", "map50", "map50_95", "encode_ms_mean", "decode_ms_mean",
        "head_ms_mean", "tail_ms_mean", "scheme", "calibration", "image", "per_frame"}
# the realistic checkpoint at a small input: seconds, not minutes
SMALL = ["--cut", "d", "--imgsz", "256"]


def bench(*args: str, out: Path) -> Dict[str, Any]:
    result = runner.invoke(app, ["bench", "codec", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    data: Dict[str, Any] = json.loads(out.read_text())
    return data


def measured(data: Dict[str, Any]) -> List[str]:
    return [f["frame"] for f in data["per_frame"]]


def folder(tmp_path: Path, name: str, source: Path, *files: str) -> Path:
    target = tmp_path / name
    target.mkdir()
    for f in files:
        shutil.copy(source / f, target / f)
    return target


@pytest.mark.model
def test_bench_codec_json_has_the_promised_fields(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "codec", "yolov8n.yaml", "--source", "synthetic:2", "--imgsz", "128",
                                 "--bits", "32", "--images", "jpeg", "--json", "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= KEYS and data["frames"] == 2
    assert 16 < data["bits_per_value"] <= 32.5  # float passthrough: zstd takes a little off 32 bits a value
    assert data["scheme"].startswith("wire format 1 (--bits 32)") and data["calibration"] is None


@pytest.mark.model
def test_bench_codec_on_the_realistic_checkpoint_is_faithful_at_4_bits(tmp_path: Path, checkpoint: str) -> None:
    data = bench(checkpoint, "--source", "synthetic:4", "--imgsz", "320", "--bits", "4", "--images", "none",
                 out=tmp_path / "r.json")
    assert data["reference_boxes"] > 0 and data["map50"] >= 0.95
    assert data["bits_per_value"] < 4 and data["frames"] == 4  # wire format 1 calibrates on nothing
    assert data["image"] == {"curve": [], "skipped": {}, "at_our_map50_95": {}}


@pytest.mark.model
def test_by_default_the_first_frames_calibrate_and_only_the_others_are_measured(
    tmp_path: Path, checkpoint: str, image_folder: Path
) -> None:
    data = bench(checkpoint, "--source", str(image_folder), *SMALL, "--calibration-frames", "2", "--images", "jpeg",
                 out=tmp_path / "r.json")
    files = sorted(p.name for p in image_folder.iterdir())
    assert data["calibration"]["frames"] == files[:2] and measured(data) == files[2:]
    assert data["calibration"]["how"] == "first frames of the source"
    assert data["calibration"]["table"]["digest"] == data["codec"]["table"]
    assert data["scheme"] == "wire format 2: sensitivity-weighted, range-coded, quality 50"
    assert data["codec"]["quality"] == 50 and data["codec"]["delta"] == pytest.approx(0.0007)
    assert data["reference_boxes"] > 0 and data["map50_95"] is not None


@pytest.mark.model
def test_quality_moves_the_payload_and_the_image_codecs_are_read_off_at_our_fidelity(
    tmp_path: Path, checkpoint: str, image_folder: Path
) -> None:
    coarse = bench(checkpoint, "--source", str(image_folder), *SMALL, "--calibration-frames", "2", "--quality", "30",
                   "--images", "jpeg", out=tmp_path / "coarse.json")
    fine = bench(checkpoint, "--source", str(image_folder), *SMALL, "--calibration-frames", "2", "--quality", "70",
                 "--images", "none", out=tmp_path / "fine.json")
    assert coarse["calibration"]["table"]["digest"] == fine["calibration"]["table"]["digest"]  # seeded: same table
    assert fine["payload_bytes_mean"] > 2 * coarse["payload_bytes_mean"]  # 40 points: a quarter of the step
    curve = coarse["image"]["curve"]
    assert [r["quality"] for r in curve] == [40, 60, 75, 85, 90, 95] and {r["codec"] for r in curve} == {"jpeg"}
    m = coarse["image"]["at_our_map50_95"]["jpeg"]
    reaching = [r for r in curve if r["map50_95"] >= coarse["map50_95"]]
    if reaching:  # the cheapest JPEG at least as faithful as we are, and a kB no larger than its
        assert m["point"] == min(reaching, key=lambda r: r["kB"]) and m["kB"] <= m["point"]["kB"]
    else:
        assert m == {"kB": None, "match": "never", "point": None}


@pytest.mark.model
def test_calibrate_on_another_folder_measures_all_of_the_source_but_its_frames(
    tmp_path: Path, checkpoint: str, image_folder: Path
) -> None:
    calibration = folder(tmp_path, "cal", image_folder, "zidane.jpg", "flipped-zidane.jpg")
    source = folder(tmp_path, "src", image_folder, "bus.jpg", "zidane.jpg")
    data = bench(checkpoint, "--source", str(source), "--calibrate-on", str(calibration), *SMALL, "--images", "none",
                 out=tmp_path / "r.json")
    assert data["calibration"]["how"] == "calibrate-on"
    assert sorted(data["calibration"]["frames"]) == ["flipped-zidane.jpg", "zidane.jpg"]
    # zidane.jpg is in both folders: the same pixels are never measured
    assert measured(data) == ["bus.jpg"] and data["left_out_as_calibration_frames"] == ["zidane.jpg"]
    same = runner.invoke(app, ["bench", "codec", checkpoint, "--source", str(calibration), "--calibrate-on",
                               str(calibration), *SMALL, "--images", "none", "-o", str(tmp_path / "x.json")])
    assert same.exit_code == 1 and "no frames to measure (2 equal to calibration frames, left out)" in same.output


@pytest.mark.model
def test_a_table_file_is_used_as_it_is_and_must_fit_the_cut_and_size(
    tmp_path: Path, checkpoint: str, image_folder: Path
) -> None:
    import cv2

    import splitinfer
    from splitinfer.splitting.sensitivity import calibrate

    model = splitinfer.load_model(checkpoint)
    table = calibrate(model, "d", [cv2.imread(str(image_folder / "zidane.jpg"))], imgsz=256)
    path = table.save(tmp_path / "d-256.npz")
    data = bench(checkpoint, "--source", str(image_folder), *SMALL, "--table", str(path), "--images", "none",
                 out=tmp_path / "r.json")
    assert data["codec"]["table"] == table.hexdigest and data["frames"] == 4  # nothing calibrated, all measured
    assert data["calibration"]["how"] == "table" and "cannot be checked" in data["calibration"]["line"]
    wrong = runner.invoke(app, ["bench", "codec", checkpoint, "--source", str(image_folder), "--cut", "b",
                                "--imgsz", "256", "--table", str(path), "-o", str(tmp_path / "x.json")])
    assert wrong.exit_code == 1 and "made for cut 22 at 256 px, measuring cut 10 at 256 px" in wrong.output


@pytest.mark.model
def test_a_source_used_up_by_calibration_is_a_clear_error(tmp_path: Path, checkpoint: str) -> None:
    result = runner.invoke(app, ["bench", "codec", checkpoint, "--source", "synthetic:3", *SMALL,
                                 "--calibration-frames", "3", "-o", str(tmp_path / "x.json")])
    assert result.exit_code == 1, result.output
    assert "gave no frames to measure (its first 3 calibrated (--calibration-frames)" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "nonsense"], "expected KEY=VALUE"),
    (["--bits", "2", "--quality", "50"], "give one of them"),
    (["--granularity", "tensor"], "--granularity: settings of wire format 1, which --bits selects"),
    (["--bits", "2", "--calibrate-on", "frames/"], "--calibrate-on: wire format 2 options, but --bits"),
    (["--table", "t.npz", "--calibration-frames", "4"], "--table brings a table made elsewhere"),
    (["--table", "t.npz", "--calibrate-on", "frames/"], "not both"),
    (["--calibration-frames", "0"], "at least one frame"),
    (["--images", "jpeg,gif"], "--images 'jpeg,gif': unknown gif"),
])
def test_conflicting_or_bad_options_are_refused_before_any_work(args: List[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "codec", "yolov8n.yaml", "--source", "synthetic:1", *args])
    assert result.exit_code == 1 and message in result.output, result.output
