"""``splitctl bench codec-curve`` through the Typer app, on tiny frame sets at a small input size (the real sets
take half an hour): every part of the study runs, and what must hold whatever the numbers does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()


def tiny_sets() -> Dict[str, List[Tuple[str, np.ndarray]]]:
    """Calibration on zidane.jpg, everything else on bus.jpg (as in the real sets: disjoint photographs)."""
    import cv2
    from ultralytics.utils import ASSETS

    from splitinfer.bench import codec_frames

    zidane, bus = cv2.imread(f"{ASSETS}/zidane.jpg"), cv2.imread(f"{ASSETS}/bus.jpg")
    panorama = codec_frames._panorama([bus, np.ascontiguousarray(bus[:, ::-1]), bus], 720)
    return {
        "calibration": [("zidane", zidane), ("zidane-flipped", np.ascontiguousarray(zidane[:, ::-1]))],
        "evaluation": [("bus", bus), ("bus-crop", np.ascontiguousarray(bus[200:, :600]))],
        "small": [("bus-mosaic", codec_frames._mosaic([bus], 3))],
        "static": [(f"static-{k}", bus) for k in range(3)],
        "panning": codec_frames._pan(panorama, 4, frames=3),
    }


@pytest.mark.model
def test_codec_curve_quick_measures_every_part_of_the_study(
    tmp_path: Path, checkpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splitinfer.bench import codec_frames

    monkeypatch.setattr(codec_frames, "build_sets", lambda skimage_data=None: tiny_sets())
    out = tmp_path / "curve.json"
    result = runner.invoke(app, ["bench", "codec-curve", "--model", checkpoint, "--quick", "--imgsz", "256",
                                 "--tables", str(tmp_path / "tables"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data: Dict[str, Any] = json.loads(out.read_text())
    assert list(data["calibration"]["tables"]) == ["d"] and len(list((tmp_path / "tables").glob("*.npz"))) == 1
    rows = data["sets"]["evaluation"]["weighted"]["d"]
    assert [r["quality"] for r in rows] == [40, 50, 60]
    assert rows[0]["kB"] < rows[1]["kB"] < rows[2]["kB"]  # a finer step costs bytes
    assert [(r["codec"], r["quality"]) for r in data["sets"]["evaluation"]["image"]] == [
        ("jpeg", 60), ("jpeg", 85), ("webp", 60), ("webp", 85), ("avif", 50), ("avif", 70)]
    assert set(rows[0]["image_match"]) == {"jpeg", "webp", "avif"}
    static, panning = data["clips"]["static"], data["clips"]["panning"]
    assert [r["keyframe_interval"] for r in static["rows"]] == [0, 10, 30]
    assert [r["keyframe_interval"] for r in panning["rows"]] == [0, 2, 10]
    assert panning["speed_px"] == 4 and panning["window"] == [720, 1280] and static["speed_px"] is None
    for clip in (static, panning):
        intra, *delta = clip["rows"]
        for r in delta:  # delta frames carry the same symbols: the same detections, other bytes
            assert (r["map50"], r["map50_95"]) == (intra["map50"], intra["map50_95"])
            assert r["kB_first"] == intra["kB_first"]  # the keyframe is an intra frame
    # three identical frames (bar nothing): every delta frame against its keyframe is nearly empty
    assert static["rows"][1]["kB_rest"] < 0.1 * static["rows"][0]["kB_rest"]
    [timing] = data["speed"]
    assert timing["cut"] == "d" and timing["python_same_bytes"] is True
    for title in ("evaluation: 2 frames", "static clip", "panning clip", "speed, one thread"):
        assert title in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--cuts", "bx"], "--cuts 'bx': expected presets a–d"),
    (["--cuts", "ab,d"], "--cuts 'ab,d': expected presets a–d"),
    (["--qualities", "0,50"], "expected qualities 1..100"),
    (["--qualities", "5o"], "expected integers"),
])
def test_codec_curve_refuses_bad_cuts_and_qualities(args: List[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "codec-curve", *args])
    assert result.exit_code == 1 and message in result.output, result.output
