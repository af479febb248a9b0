"""The codec study's frame sets: the panning clip is a window moving across one panorama, noise on every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splitinfer.bench import codec_frames


@pytest.fixture(scope="module")
def panorama() -> np.ndarray:
    import cv2
    from ultralytics.utils import ASSETS

    bus = cv2.imread(str(Path(ASSETS) / "bus.jpg"))
    return codec_frames._panorama([bus, np.ascontiguousarray(bus[:, ::-1]), bus, bus[:, ::-1]], 720)


def test_the_panorama_keeps_each_photographs_aspect_at_720_px(panorama: np.ndarray) -> None:
    assert panorama.shape == (720, 4 * 540, 3)


@pytest.mark.parametrize("speed", [1, 4, 16])
def test_each_panning_frame_is_the_last_one_moved_by_the_speed(panorama: np.ndarray, speed: int) -> None:
    clip = codec_frames._pan(panorama, speed, frames=4)
    assert [name for name, _ in clip] == [f"pan{speed}-{k:03d}" for k in range(4)]
    for (_, before), (_, after) in zip(clip, clip[1:]):
        assert after.shape == (720, 1280, 3)
        moved = np.abs(after[:, :-speed].astype(np.int16) - before[:, speed:]).mean()
        still = np.abs(after.astype(np.int16) - before).mean()
        assert moved < 3.5 < still  # only the two frames' noise (σ = 2 each) differs once the motion is undone
    assert (clip[0][1].astype(np.int16) - panorama[:, :1280]).std() == pytest.approx(2.0, abs=0.1)


def test_a_panorama_too_short_for_the_clip_is_refused(panorama: np.ndarray) -> None:
    with pytest.raises(ValueError, match="too short for 30 frames at 64 px"):
        codec_frames._pan(panorama, 64, frames=30)
