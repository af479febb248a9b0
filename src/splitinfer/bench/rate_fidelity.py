"""Rate and fidelity of a codec on frames: what ``bench codec`` and ``bench codec-curve`` both measure.

*Fidelity* is the mAP50 and mAP50-95 of the detections made after a codec (conf 0.001, as validation scores them)
against the unsplit fp32 model's own detections on the original frame (conf 0.25): not against human labels, so
1.0 means "the codec changed nothing the detector reports". *Rate* is bytes per frame: a feature blob, or the
letterboxed frame (what the tail would run the whole model on) as a JPEG, WebP or AVIF image.

A :class:`Tally` collects one codec setting's bytes and detections frame by frame, so a benchmark streams its
frames once and scores every setting at the end; :class:`ImageBaselines` is the image codecs' sweep, and
:func:`matched` reads off what an image codec needs for a given mAP50-95.
"""

from __future__ import annotations

import hashlib
import io
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splitinfer.splitting.fidelity import Detection, mean_average_precision

__all__ = [
    "IMAGE_CODECS",
    "IMAGE_QUALITIES",
    "PREDICTION_CONF",
    "REFERENCE_CONF",
    "ImageBaselines",
    "Reference",
    "Tally",
    "detections",
    "image_codecs",
    "image_roundtrip",
    "matched",
    "matched_per_codec",
    "pixel_digest",
    "reference",
]

REFERENCE_CONF = 0.25  # the unsplit model's detections at this confidence are the ground truth
PREDICTION_CONF = 0.001  # detections after a codec are scored at this one, as validation does
IMAGE_CODECS = ("jpeg", "webp", "avif")
IMAGE_QUALITIES: Dict[str, List[int]] = {
    "jpeg": [40, 60, 75, 85, 90, 95],
    "webp": [40, 60, 75, 85, 90, 95],
    "avif": [35, 50, 60, 70, 80, 90],
}

Reference = Tuple[np.ndarray, np.ndarray]  # boxes N×4, classes N


def reference(model: Any, out: Any, metas: Sequence[Any], conf: float = REFERENCE_CONF) -> Reference:
    """The unsplit model's detections of one frame (``out`` = ``model(x)``): the ground truth fidelity uses."""
    import splitinfer

    found = splitinfer.postprocess(out, metas, conf=conf, end2end=model.end2end)[0]
    return found.boxes, found.classes


def detections(model: Any, out: Any, metas: Sequence[Any]) -> Detection:
    """One frame's detections after a codec (``out``: the tail's or the whole model's output), to be scored."""
    import splitinfer

    found = splitinfer.postprocess(out, metas, conf=PREDICTION_CONF, end2end=model.end2end)[0]
    return found.boxes, found.scores, found.classes


def pixel_digest(image: np.ndarray) -> bytes:
    """sha256 of a frame's shape and pixels: tells a measured frame that is also a calibration frame."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.digest()


class Tally:
    """One codec setting (``key``: e.g. quality, codec) over a frame set: bytes and detections per frame."""

    def __init__(self, **key: Any) -> None:
        self.key = key
        self.sizes: List[int] = []
        self.found: List[Detection] = []

    def add(self, size: int, found: Detection) -> None:
        self.sizes.append(size)
        self.found.append(found)

    def row(self, references: Sequence[Reference]) -> Dict[str, Any]:
        """``key`` and kB/frame (mean and max), mAP50 and mAP50-95 against ``references`` (None without boxes)."""
        if len(references) != len(self.found) or not self.sizes:
            raise ValueError(f"{len(self.found)} frames tallied for {len(references)} references")
        map50, map50_95 = mean_average_precision(self.found, references)
        return {**self.key, "kB": statistics.fmean(self.sizes) / 1000, "kB_max": max(self.sizes) / 1000,
                "map50": map50, "map50_95": map50_95}


def image_codecs(kinds: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Which of ``kinds`` (jpeg, webp, avif) run here, and why each other one does not."""
    available: List[str] = []
    skipped: Dict[str, str] = {}
    for kind in kinds:
        if kind not in IMAGE_CODECS:
            raise ValueError(f"unknown image codec {kind!r}; expected some of {', '.join(IMAGE_CODECS)}")
        reason = _missing(kind)
        if reason:
            skipped[kind] = reason
        else:
            available.append(kind)
    return available, skipped


def _missing(kind: str) -> str:
    if kind == "jpeg":
        return ""  # OpenCV, a dependency of Ultralytics
    try:
        from PIL import features
    except ImportError:
        return "Pillow is not installed"
    return "" if features.check(kind) else f"this Pillow ({_pillow_version()}) was built without {kind.upper()}"


def _pillow_version() -> str:
    import PIL

    return str(getattr(PIL, "__version__", "?"))


def image_roundtrip(kind: str, quality: int, bgr: np.ndarray) -> Tuple[int, np.ndarray]:
    """``bgr`` encoded as ``kind`` at ``quality`` and decoded: (bytes, decoded BGR image).

    JPEG through OpenCV (libjpeg, 4:2:0); WebP through Pillow (method 4); AVIF through Pillow (speed 6, one thread).
    """
    import cv2

    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise RuntimeError(f"OpenCV could not round-trip JPEG q{quality}")
        return len(buf), np.asarray(decoded)
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    if kind == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    else:
        image.save(out, "AVIF", quality=quality, speed=6, max_threads=1)
    data = out.getvalue()
    return len(data), np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., ::-1])


class ImageBaselines:
    """Each letterboxed frame as ``kinds`` at every quality of ``qualities[kind]``, run through the whole model."""

    def __init__(self, kinds: Sequence[str], qualities: Optional[Dict[str, List[int]]] = None) -> None:
        qualities = qualities or IMAGE_QUALITIES
        self.tallies = [Tally(codec=kind, quality=q) for kind in kinds for q in qualities[kind]]

    def add(self, model: Any, letterboxed: np.ndarray, metas: Sequence[Any]) -> None:
        import torch

        for tally in self.tallies:
            size, decoded = image_roundtrip(tally.key["codec"], tally.key["quality"], letterboxed)
            x = torch.from_numpy(np.ascontiguousarray(decoded[..., ::-1].transpose(2, 0, 1)))[None].float() / 255
            tally.add(size, detections(model, model(x.to(model.device)), metas))

    def rows(self, references: Sequence[Reference]) -> List[Dict[str, Any]]:
        return [t.row(references) for t in self.tallies]


def matched(curve: Sequence[Dict[str, Any]], map50_95: Optional[float]) -> Dict[str, Any]:
    """What an image codec needs, on its measured ``curve`` (rows with kB, quality, mAP50, mAP50-95), to reach
    ``map50_95``.

    ``kB``: interpolated in log kB between the cheapest measured point reaching it and the point before
    (``match`` "interpolated"); that point's kB when even the cheapest point reaches it ("at most": the true figure
    is lower); None when no point does ("never"). ``point``: the cheapest measured point reaching it (its quality,
    kB, mAP50 and mAP50-95), or None.
    """
    points = sorted((r for r in curve if r["map50_95"] is not None), key=lambda r: r["kB"])
    if map50_95 is None:
        return {"kB": None, "match": "no reference boxes", "point": None}
    for k, row in enumerate(points):
        if row["map50_95"] >= map50_95:
            if k == 0:
                return {"kB": row["kB"], "match": "at most", "point": dict(row)}
            before = points[k - 1]
            t = (map50_95 - before["map50_95"]) / (row["map50_95"] - before["map50_95"])
            kb = float(np.exp(np.log(before["kB"]) + t * (np.log(row["kB"]) - np.log(before["kB"]))))
            return {"kB": kb, "match": "interpolated", "point": dict(row)}
    return {"kB": None, "match": "never", "point": None}


def matched_per_codec(curve: Sequence[Dict[str, Any]], map50_95: Optional[float]) -> Dict[str, Dict[str, Any]]:
    """:func:`matched` for each image codec with points in ``curve`` (rows carry ``codec``)."""
    kinds = [k for k in IMAGE_CODECS if any(r["codec"] == k for r in curve)]
    return {kind: matched([r for r in curve if r["codec"] == kind], map50_95) for kind in kinds}
