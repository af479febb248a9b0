"""Frame sources: image folders and files, video files, cameras (USB/V4L2 by index or ``/dev/videoN``, Jetson CSI
cameras as ``csi://N``), RTSP/HTTP URLs, GStreamer pipelines, and a synthetic clip built from the images
Ultralytics ships.

Every source yields BGR uint8 frames (as OpenCV reads them). :func:`check_source` says in one line why a source
cannot open (no GStreamer in this OpenCV, no such device node, no permission, …) before a head goes online. The
synthetic clip comes from the split part's samples (:mod:`splitinfer.splitting.samples`). Part of the node
runtime: Python 3.8-compatible.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

from splitinfer.errors import SourceError
from splitinfer.splitting.samples import SYNTHETIC, synthetic_frames

__all__ = ["ARGUS_SOCKET", "IMAGE_SUFFIXES", "CsiCamera", "Frame", "check_source", "open_source", "sample_frames",
           "video_backends"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
ARGUS_SOCKET = "/tmp/argus_socket"
"""nvargus-daemon's socket: a container reaches the Jetson's camera daemon through it (mounted from the host)."""
_ARGUS_PLUGIN = "libgstnvarguscamerasrc.so"
_PLUGIN_DIRS = ("/usr/lib/aarch64-linux-gnu/gstreamer-1.0", "/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
                "/usr/lib/gstreamer-1.0", "/usr/local/lib/gstreamer-1.0")
_VIDEO_NODE = re.compile(r"^/dev/video(\d+)$")
_CSI_LIMITS = {"width": (32, 8192), "height": (32, 8192), "fps": (1, 240), "flip": (0, 7)}


@dataclass(frozen=True)
class Frame:
    """One captured frame: ``index`` counts from 0 within the source; ``name`` is a file name when there is one."""

    image: Any
    index: int
    name: str = ""


@dataclass(frozen=True)
class CsiCamera:
    """A Jetson CSI camera, ``csi://N?width=&height=&fps=&flip=``: sensor N through nvarguscamerasrc (the ISP does
    debayering and exposure), converted on the VIC (nvvidconv) and handed to OpenCV as BGR. ``flip`` is
    nvvidconv's flip-method (0 none, 2 rotate 180°, 4 horizontal, 6 vertical mirror…)."""

    sensor_id: int = 0
    width: int = 1280
    height: int = 720
    fps: int = 30
    flip: int = 0

    @classmethod
    def parse(cls, spec: str) -> CsiCamera:
        parts = urlsplit(spec)
        where = parts.netloc + parts.path
        if parts.scheme != "csi" or not where.isdigit():
            raise SourceError(f"source {spec!r}: expected csi://N[?width=&height=&fps=&flip=] with N the sensor id "
                              "(0, 1, …)", source=spec)
        values: Dict[str, int] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _CSI_LIMITS:
                raise SourceError(f"source {spec!r}: unknown option {key!r} (expected width, height, fps, flip)",
                                  source=spec)
            low, high = _CSI_LIMITS[key]
            if not value.isdigit() or not low <= int(value) <= high:
                raise SourceError(f"source {spec!r}: {key} must be a whole number from {low} to {high}, "
                                  f"got {value!r}", source=spec)
            values[key] = int(value)
        return cls(sensor_id=int(where), **values)

    def pipeline(self) -> str:
        """The GStreamer pipeline OpenCV opens (the caps Jetson users use: NV12 in NVMM memory from the ISP,
        BGRx out of nvvidconv, BGR out of videoconvert; the appsink keeps only the newest frame)."""
        size = f"width={self.width},height={self.height}"
        return (f"nvarguscamerasrc sensor-id={self.sensor_id} ! "
                f"video/x-raw(memory:NVMM),{size},format=NV12,framerate={self.fps}/1 ! "
                f"nvvidconv flip-method={self.flip} ! video/x-raw,{size},format=BGRx ! "
                "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1")


def open_source(spec: str, *, limit: Optional[int] = None, loop: bool = False) -> Iterator[Frame]:
    """Frames from ``spec``: a folder of images, an image, a video file, a camera (index ``0`` or ``/dev/video0``,
    through V4L2), a Jetson CSI camera (``csi://0``), an RTSP/HTTP URL, a GStreamer pipeline (contains ``!``,
    ending in ``appsink``), or ``synthetic[:N]``.

    ``limit`` stops after that many frames; ``loop`` restarts finite sources (folders, files, synthetic).
    """
    frames = _frames(spec, loop=loop)
    for k, frame in enumerate(frames):
        if limit is not None and k >= limit:
            return
        yield Frame(frame.image, k, frame.name)


def sample_frames(spec: str, count: int, *, every: int = 1) -> List[Any]:
    """Up to ``count`` images from a finite source, one in every ``every`` (e.g. calibration frames from a video
    of the camera's scene). SourceError when the source gives none."""
    if count < 1 or every < 1:
        raise SourceError(f"{spec}: need count ≥ 1 and every ≥ 1, got {count} and {every}")
    images = [f.image for f in open_source(spec, limit=count * every) if f.index % every == 0]
    if not images:
        raise SourceError(f"{spec}: no frames to read")
    return images


def check_source(spec: str) -> None:
    """Raise SourceError, with the reason in one line, when ``spec`` cannot open here; return when it should.

    Files, folders and V4L2 cameras are opened and released; a CSI camera or a stream is checked without starting
    it (OpenCV's backends, JetPack's camera plugin, the Argus daemon's socket): starting nvarguscamerasrc twice in
    a row is unreliable, and a stream's timeout would hold the node for half a minute.
    """
    kind = _kind(spec)
    if kind == "synthetic":
        _synthetic_count(spec)
    elif kind == "csi":
        _check_csi(spec, CsiCamera.parse(spec))
    elif kind == "gstreamer":
        _need_backend(spec, "GStreamer", "a GStreamer pipeline")
    elif kind == "stream":
        if not (video_backends().get("FFMPEG") or video_backends().get("GStreamer")):
            raise SourceError(f"source {spec!r}: this OpenCV has neither FFMPEG nor GStreamer, so it cannot read "
                              "network streams", source=spec)
    elif kind == "camera":
        _open_camera(spec).release()
    elif kind == "folder":
        _folder_files(Path(spec))
    elif kind == "image":
        _read_image(Path(spec))
    elif kind == "video":
        cap = _open_video(spec)
        try:
            if not cap.read()[0]:
                raise SourceError(f"source {spec!r}: OpenCV opened it but read no frame", source=spec)
        finally:
            cap.release()
    else:
        _missing(spec)


def _kind(spec: str) -> str:
    if spec == SYNTHETIC or spec.startswith(SYNTHETIC + ":"):
        return "synthetic"
    if spec.startswith("csi://"):
        return "csi"
    if "!" in spec:
        return "gstreamer"
    if spec.split("://", 1)[0].lower() in STREAM_SCHEMES and "://" in spec:
        return "stream"
    if spec.isdigit() or spec.startswith("/dev/"):
        return "camera"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video" if path.exists() else "missing"


def _frames(spec: str, *, loop: bool) -> Iterator[Frame]:
    live = _kind(spec) in ("csi", "gstreamer", "stream", "camera")
    while True:
        produced = False
        for frame in _one_pass(spec):
            produced = True
            yield frame
        if not loop or not produced or live:
            return


def _one_pass(spec: str) -> Iterator[Frame]:
    kind = _kind(spec)
    if kind == "synthetic":
        for k, (image, name) in enumerate(synthetic_frames(_synthetic_count(spec))):
            yield Frame(image, k, name)
    elif kind == "folder":
        for k, p in enumerate(_folder_files(Path(spec))):
            yield Frame(_read_image(p), k, p.name)
    elif kind == "image":
        yield Frame(_read_image(Path(spec)), 0, Path(spec).name)
    elif kind == "missing":
        _missing(spec)
    else:
        yield from _read_all(_open_capture(spec, kind))


def _synthetic_count(spec: str) -> int:
    text = spec.split(":", 1)[1] if ":" in spec else "60"
    if not text.isdigit() or int(text) < 1:
        raise SourceError(f"source {spec!r}: expected synthetic or synthetic:N with N ≥ 1 frames", source=spec)
    return int(text)


def _missing(spec: str) -> None:
    raise SourceError(f"source {spec!r}: no such file or folder (expected a folder of images, an image, a video, "
                      "a camera index or /dev/videoN, csi://N, an rtsp:// URL, a GStreamer pipeline, or "
                      "'synthetic')", source=spec)


def _read_image(path: Path) -> Any:
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise SourceError(f"{path}: not a readable image", source=str(path))
    return image


def _folder_files(path: Path) -> Any:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})", source=str(path))
    return files


# -- OpenCV captures -------------------------------------------------------------------------------------------


def video_backends() -> Dict[str, bool]:
    """Which video I/O backends this OpenCV was built with, from ``cv2.getBuildInformation()``: ``GStreamer``,
    ``FFMPEG``, ``v4l/v4l2`` → True/False."""
    import cv2

    found = re.findall(r"^\s*(GStreamer|FFMPEG|v4l/v4l2):\s*(\w+)", cv2.getBuildInformation(), re.MULTILINE)
    return {name: value.upper() == "YES" for name, value in found}


def _opencv() -> str:
    import cv2

    return f"OpenCV {cv2.__version__} at {os.path.dirname(cv2.__file__ or '')}"


def _need_backend(spec: str, backend: str, what: str) -> None:
    if not video_backends().get(backend):
        hint = (" PyPI's opencv-python wheels have no GStreamer; the Jetson image (Dockerfile.jetson) builds "
                "OpenCV with it" if backend == "GStreamer" else "")
        raise SourceError(f"source {spec!r}: this {_opencv()} was built without {backend} "
                          f"(cv2.getBuildInformation() says {backend}: NO), so it cannot open {what}.{hint}",
                          source=spec)


def _check_csi(spec: str, camera: CsiCamera) -> None:
    _need_backend(spec, "GStreamer", "a CSI camera")
    if _argus_plugin() is None:
        raise SourceError(f"source {spec!r}: GStreamer's nvarguscamerasrc plugin ({_ARGUS_PLUGIN}) is not here; it "
                          "comes with JetPack: on a Jetson run the container with runtime: nvidia, which mounts it "
                          "from the host", source=spec)
    if not os.path.exists(ARGUS_SOCKET):
        raise SourceError(f"source {spec!r}: no Argus camera daemon socket at {ARGUS_SOCKET}: nvargus-daemon must "
                          f"run on the Jetson, and a container needs the socket mounted "
                          f"(-v {ARGUS_SOCKET}:{ARGUS_SOCKET}; splitctl deploy adds it for csi:// sources)",
                          source=spec)


def _argus_plugin() -> Optional[str]:
    dirs = []
    for variable in ("GST_PLUGIN_PATH_1_0", "GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH_1_0", "GST_PLUGIN_SYSTEM_PATH"):
        dirs += [d for d in os.environ.get(variable, "").split(os.pathsep) if d]
    for folder in (*dirs, *_PLUGIN_DIRS):
        candidate = os.path.join(folder, _ARGUS_PLUGIN)
        if os.path.exists(candidate):
            return candidate
    return None


def _video_node(spec: str) -> Tuple[str, int]:
    """The V4L2 device node and index of a camera source (``0`` → /dev/video0; by-id links are followed)."""
    if spec.isdigit():
        return f"/dev/video{int(spec)}", int(spec)
    node = os.path.realpath(spec) if os.path.exists(spec) else spec
    match = _VIDEO_NODE.match(node)
    if match is None:
        reason = "not a video device" if os.path.exists(spec) else "no such device node"
        raise SourceError(f"source {spec!r}: {reason} (expected /dev/videoN or a camera index)", source=spec)
    return node, int(match.group(1))


def _open_camera(spec: str) -> Any:
    import cv2

    node, index = _video_node(spec)
    if not sys.platform.startswith("linux"):
        return _opened(spec, cv2.VideoCapture(index), f"OpenCV could not open camera {index}")
    if not os.path.exists(node):
        present = sorted(str(p) for p in Path("/dev").glob("video*"))
        raise SourceError(f"source {spec!r}: no such device node {node} (video devices here: "
                          f"{', '.join(present) or 'none'}); a container sees only the devices passed to it "
                          "(fleet.yaml devices:, which deploy fills in for a camera source)", source=spec)
    if not stat.S_ISCHR(os.stat(node).st_mode):
        raise SourceError(f"source {spec!r}: {node} is not a character device, so not a camera", source=spec)
    if not os.access(node, os.R_OK | os.W_OK):
        raise SourceError(f"source {spec!r}: permission denied on {node} (run as root or as a member of its group, "
                          "usually 'video')", source=spec)
    if video_backends().get("v4l/v4l2") is False:
        raise SourceError(f"source {spec!r}: this {_opencv()} was built without V4L2", source=spec)
    return _opened(spec, cv2.VideoCapture(index, cv2.CAP_V4L2),
                   f"OpenCV could not open {node} with V4L2 (not a capture device — on a Jetson a CSI camera's "
                   "node is read with csi://N —, a format it cannot convert, or in use by another process)")


def _open_video(spec: str) -> Any:
    import cv2

    if not os.access(spec, os.R_OK):
        raise SourceError(f"source {spec!r}: permission denied", source=spec)
    return _opened(spec, cv2.VideoCapture(spec), f"OpenCV cannot decode this file ({_opencv()})")


def _open_capture(spec: str, kind: str) -> Any:
    import cv2

    if kind == "camera":
        return _open_camera(spec)
    if kind == "video":
        return _open_video(spec)
    if kind == "csi":
        camera = CsiCamera.parse(spec)
        _check_csi(spec, camera)
        return _opened(spec, cv2.VideoCapture(camera.pipeline(), cv2.CAP_GSTREAMER),
                       "GStreamer could not start nvarguscamerasrc (camera connected? right sensor id? another "
                       "process holding it? see `journalctl -u nvargus-daemon` on the Jetson)")
    if kind == "gstreamer":
        _need_backend(spec, "GStreamer", "a GStreamer pipeline")
        return _opened(spec, cv2.VideoCapture(spec, cv2.CAP_GSTREAMER),
                       "GStreamer could not start this pipeline (it must end in appsink)")
    return _opened(spec, cv2.VideoCapture(spec), "OpenCV could not open the stream (unreachable, wrong path or "
                                                 "credentials, or a codec this OpenCV lacks)")


def _opened(spec: str, cap: Any, reason: str) -> Any:
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"source {spec!r}: {reason}", source=spec)
    return cap


def _read_all(cap: Any) -> Iterator[Frame]:
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
