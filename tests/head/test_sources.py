from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splitinfer.errors import SourceError
from splitinfer.head.sources import open_source


def test_synthetic_clip_has_the_asked_length_and_moves() -> None:
    frames = list(open_source("synthetic:1000"))
    assert len(frames) == 1000 and [f.index for f in frames[:3]] == [0, 1, 2]
    assert frames[0].image.shape == (720, 1280, 3)
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_limit_and_loop() -> None:
    assert len(list(open_source("synthetic:5", limit=3))) == 3
    looped = list(open_source("synthetic:4", limit=10, loop=True))
    assert [f.index for f in looped] == list(range(10))
    assert np.array_equal(looped[0].image, looped[4].image)


def test_folder_and_single_image(tmp_path: Path) -> None:
    import cv2

    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((20, 30, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [f.name for f in open_source(str(tmp_path))] == ["a.jpg", "b.png"]
    assert [f.name for f in open_source(str(tmp_path / "a.jpg"))] == ["a.jpg"]


def test_video_file(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(7):
        writer.write(np.full((48, 64, 3), k * 30, dtype=np.uint8))
    writer.release()
    frames = list(open_source(str(path)))
    assert len(frames) == 7 and frames[0].image.shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("nowhere/clip.mp4", "no such file or folder"), ("empty-folder", "has no images"), ("bad.jpg", "not a readable")],
)
def test_bad_sources_say_why(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    target = spec if spec.startswith("nowhere") else str(tmp_path / spec)
    with pytest.raises(SourceError, match=message):
        list(open_source(target))
