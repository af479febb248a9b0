"""Frame sources: image folders and files, video files, camera indices, RTSP/HTTP URLs, GStreamer pipelines
(Jetson CSI cameras), and a synthetic clip built from the images Ultralytics ships.

Every source yields BGR uint8 frames (as OpenCV reads them). The synthetic clip comes from the split part's
samples (:mod:`splitinfer.splitting.samples`). Part of the node runtime: Python 3.8-compatible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from splitinfer.errors import SourceError
from splitinfer.splitting.samples import SYNTHETIC, synthetic_frames

__all__ = ["IMAGE_SUFFIXES", "Frame", "check_source", "open_source"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Frame:
    """One captured frame: ``index`` counts from 0 within the source; ``name`` is a file name when there is one."""

    image: Any
    index: int
    name: str = ""


def open_source(spec: str, *, limit: Optional[int] = None, loop: bool = False) -> Iterator[Frame]:
    """Frames from ``spec``: a folder of images, an image, a video file, a camera index (``0``), an RTSP/HTTP URL,
    a GStreamer pipeline (contains ``!``, e.g. ``nvarguscamerasrc ! … ! appsink``), or ``synthetic[:N]``.

    ``limit`` stops after that many frames; ``loop`` restarts finite sources (folders, files, synthetic).
    """
    frames = _frames(spec, loop=loop)
    for k, frame in enumerate(frames):
        if limit is not None and k >= limit:
            return
        yield Frame(frame.image, k, frame.name)


def check_source(spec: str) -> None:
    """Open ``spec`` and read its first frame; SourceError saying why when it cannot (before a node says it is
    online, and before ``run --local`` starts anything)."""
    first = next(open_source(spec, limit=1), None)
    if first is None:
        raise SourceError(f"source {spec!r} gave no frame", source=spec)


def _frames(spec: str, *, loop: bool) -> Iterator[Frame]:
    while True:
        produced = False
        for frame in _one_pass(spec):
            produced = True
            yield frame
        if not loop or not produced or _is_live(spec):
            return


def _is_live(spec: str) -> bool:
    return spec.isdigit() or "!" in spec or spec.split("://", 1)[0] in ("rtsp", "rtmp", "http", "https", "udp", "tcp")


def _one_pass(spec: str) -> Iterator[Frame]:
    if spec == SYNTHETIC or spec.startswith(SYNTHETIC + ":"):
        count = int(spec.split(":", 1)[1]) if ":" in spec else 60
        for k, (image, name) in enumerate(synthetic_frames(count)):
            yield Frame(image, k, name)
        return
    path = Path(spec)
    if path.is_dir():
        yield from _folder(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        yield Frame(_read_image(path), 0, path.name)
    elif path.exists() or _is_live(spec):
        yield from _capture(spec)
    else:
        raise SourceError(f"source {spec!r}: no such file or folder (expected a folder of images, an image, a video, "
                          "a camera index, an rtsp:// URL, a GStreamer pipeline, or 'synthetic')")


def _read_image(path: Path) -> Any:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    return image


def _folder(path: Path) -> Iterator[Frame]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    for k, p in enumerate(files):
        yield Frame(_read_image(p), k, p.name)


def _capture(spec: str) -> Iterator[Frame]:
    import cv2

    if spec.isdigit():
        cap = cv2.VideoCapture(int(spec))
    elif "!" in spec:
        cap = cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
    else:
        cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        raise SourceError(f"source {spec!r}: OpenCV could not open it" +
                          (" (this OpenCV has no GStreamer)" if "!" in spec and not _has_gstreamer() else ""))
    try:
        k = 0
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            yield Frame(image, k, "")
            k += 1
    finally:
        cap.release()


def _has_gstreamer() -> bool:
    import cv2

    return "GStreamer:                   YES" in cv2.getBuildInformation()
