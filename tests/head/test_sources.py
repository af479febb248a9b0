from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, List, Tuple

import numpy as np
import pytest

from splitinfer.errors import SourceError
from splitinfer.head import sources
from splitinfer.head.sources import CsiCamera, check_source, open_source, video_backends


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


# -- cameras ---------------------------------------------------------------------------------------------------

PIPELINE = (
    "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,format=NV12,framerate=30/1 ! "
    "nvvidconv flip-method=0 ! video/x-raw,width=1280,height=720,format=BGRx ! videoconvert ! "
    "video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
)


class FakeCapture:
    """Stands in for cv2.VideoCapture: records what was opened, opens when told to, yields ``frames`` frames."""

    opened: ClassVar[List[Tuple[Any, ...]]] = []

    def __init__(self, *args: Any, ok: bool = True, frames: int = 2) -> None:
        self.args, self.ok, self.left = args, ok, frames
        FakeCapture.opened.append(args)

    def isOpened(self) -> bool:
        return self.ok

    def read(self) -> Tuple[bool, Any]:
        self.left -= 1
        return (True, np.zeros((4, 4, 3), np.uint8)) if self.left >= 0 else (False, None)

    def release(self) -> None:
        pass


@pytest.fixture
def jetson(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An OpenCV with GStreamer, JetPack's camera plugin and the Argus socket, all faked under ``tmp_path``."""
    monkeypatch.setattr(sources, "video_backends", lambda: {"GStreamer": True, "FFMPEG": True, "v4l/v4l2": True})
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "libgstnvarguscamerasrc.so").write_bytes(b"")
    monkeypatch.setenv("GST_PLUGIN_PATH", str(tmp_path / "plugins"))
    (tmp_path / "argus_socket").write_bytes(b"")
    monkeypatch.setattr(sources, "ARGUS_SOCKET", str(tmp_path / "argus_socket"))
    FakeCapture.opened = []
    return tmp_path


def test_csi_camera_builds_the_jetson_pipeline() -> None:
    assert CsiCamera.parse("csi://0").pipeline() == PIPELINE
    custom = CsiCamera.parse("csi://1?width=1920&height=1080&fps=15&flip=2").pipeline()
    assert custom.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,")
    assert "framerate=15/1 ! nvvidconv flip-method=2 ! video/x-raw,width=1920,height=1080,format=BGRx" in custom


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("csi://", "expected csi://N"),
        ("csi://cam", "expected csi://N"),
        ("csi://0?zoom=2", "unknown option 'zoom' (expected width, height, fps, flip)"),
        ("csi://0?fps=0", "fps must be a whole number from 1 to 240, got '0'"),
        ("csi://0?flip=8", "flip must be a whole number from 0 to 7"),
        ("csi://0?width=wide", "width must be a whole number"),
    ],
)
def test_bad_csi_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=re.escape(message)):
        check_source(spec)


def test_without_gstreamer_a_csi_camera_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "video_backends", lambda: {"GStreamer": False, "FFMPEG": True, "v4l/v4l2": True})
    for spec in ("csi://0", "videotestsrc ! appsink"):
        with pytest.raises(SourceError) as caught:
            check_source(spec)
        text = str(caught.value)
        assert "\n" not in text and "was built without GStreamer (cv2.getBuildInformation() says GStreamer: NO)" in text
    with pytest.raises(SourceError, match="cannot open a CSI camera"):
        list(open_source("csi://0"))


def test_this_opencvs_backends_are_read_from_its_build_information() -> None:
    import cv2

    backends = video_backends()
    assert set(backends) >= {"GStreamer", "FFMPEG", "v4l/v4l2"}
    info = cv2.getBuildInformation()
    for name, present in backends.items():
        assert re.search(rf"^\s*{re.escape(name)}:\s*{'YES' if present else 'NO'}", info, re.MULTILINE)


def test_csi_needs_jetpacks_plugin_then_the_argus_socket(jetson: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_source("csi://0")  # everything there: checked without starting the camera
    assert FakeCapture.opened == []
    (jetson / "argus_socket").unlink()
    with pytest.raises(SourceError, match=r"no Argus camera daemon socket at .*argus_socket: nvargus-daemon"):
        check_source("csi://0")
    monkeypatch.delenv("GST_PLUGIN_PATH")
    monkeypatch.setattr(sources, "_PLUGIN_DIRS", ())
    with pytest.raises(SourceError, match=r"nvarguscamerasrc plugin .* runtime: nvidia"):
        check_source("csi://0")


def test_csi_frames_come_through_opencvs_gstreamer_backend(jetson: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    frames = list(open_source("csi://0", limit=5))
    assert len(frames) == 2 and FakeCapture.opened == [(PIPELINE, cv2.CAP_GSTREAMER)]
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: FakeCapture(*args, ok=False))
    with pytest.raises(SourceError, match="GStreamer could not start nvarguscamerasrc"):
        list(open_source("csi://0"))


def test_a_missing_camera_device_says_so() -> None:
    for spec, node in (("/dev/video99", "/dev/video99"), ("99", "/dev/video99")):
        with pytest.raises(SourceError) as caught:
            check_source(spec)
        text = str(caught.value)
        assert "\n" not in text and f"no such device node {node} (video devices here:" in text
    with pytest.raises(SourceError, match="not a video device"):
        check_source("/dev/null")


def test_camera_permission_and_open_failures(jetson: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(sources, "_video_node", lambda spec: ("/dev/null", 3))  # a real character device
    monkeypatch.setattr(sources.os, "access", lambda path, mode: False)
    with pytest.raises(SourceError, match=r"permission denied on /dev/null \(run as root or as a member"):
        check_source("/dev/video3")
    monkeypatch.setattr(sources.os, "access", lambda path, mode: True)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: FakeCapture(*args, ok=False))
    with pytest.raises(SourceError, match="OpenCV could not open /dev/null with V4L2"):
        check_source("/dev/video3")
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    check_source("3")
    assert FakeCapture.opened[-1] == (3, cv2.CAP_V4L2)
    assert len(list(open_source("/dev/video3"))) == 2


def test_files_and_folders_are_checked_without_reading_them_all(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((20, 30, 3), dtype=np.uint8))
    check_source(str(tmp_path))
    check_source(str(tmp_path / "a.jpg"))
    check_source("synthetic:3")
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="OpenCV cannot decode this file"):
        check_source(str(tmp_path / "clip.mp4"))
    with pytest.raises(SourceError, match="no such file or folder"):
        check_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match="synthetic:N with N ≥ 1"):
        check_source("synthetic:x")
