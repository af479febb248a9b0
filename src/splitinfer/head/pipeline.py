"""One assignment's processing, applied to a batch of captured frames, in each of the three modes:

- :class:`HeadPipeline` (split): letterbox → head layers up to the cut → feature codec; the tail finishes;
- :class:`OffloadPipeline`: letterbox → an image codec (JPEG, WebP, AVIF); the tail runs the whole model —
  the frames leave the camera, so only for heads the operator allowed it;
- :class:`LocalPipeline`: letterbox → the whole model → NMS, on the head; it publishes the detections itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from splitinfer.broker.messages import Assignment
from splitinfer.codec import Codec
from splitinfer.codec.table import CalibrationTable
from splitinfer.node.models import load_assigned_model
from splitinfer.splitting import Head, postprocess, split, to_batch
from splitinfer.splitting.model import Model, default_imgsz
from splitinfer.splitting.preprocess import letterbox

__all__ = ["HeadPipeline", "LocalPipeline", "OffloadPipeline", "Taken", "build_pipeline", "codec_for"]

Taken = List[Tuple[Any, float, float]]  # (frame, capture wall time, capture ms)


def _to_batch(taken: Taken, imgsz: int, source: str) -> Tuple[Any, Any]:
    """The network input for ``taken`` and its frames' metadata (sequence numbers, capture times)."""
    return to_batch([f.image for f, _, _ in taken], imgsz, sources=[source] * len(taken),
                    seqs=[f.index for f, _, _ in taken], timestamps=[wall for _, wall, _ in taken])


def _capture_ms(taken: Taken) -> float:
    return sum(ms for _, _, ms in taken) / len(taken)


@dataclass
class HeadPipeline:
    head: Head
    codec: Any
    imgsz: int
    mode = "split"

    @classmethod
    def build(cls, assignment: Assignment, *, model_dir: str = "", device: str = "cpu", half: bool = False,
              model: Optional[Model] = None, tables: Sequence[CalibrationTable] = ()) -> HeadPipeline:
        """The pipeline for ``assignment``: its model (``model``, or loaded from ``model_dir``), cut and codec —
        the calibrated codec where one of ``tables`` is this model's at this cut and input size."""
        if model is None:
            model = load_assigned_model(assignment, model_dir=model_dir, device=device, half=half)
        head, _ = split(model, assignment.cut)
        imgsz = default_imgsz(model, assignment.imgsz)
        return cls(head=head, codec=codec_for(head.cut, model, imgsz, assignment.codec, tables), imgsz=imgsz)

    def process(self, taken: Taken, source: str) -> Tuple[bytes, Dict[str, float]]:
        """Frames (frame, capture wall time, capture ms) → (codec blob, stage timings in ms)."""
        t0 = time.perf_counter()
        x, frames = _to_batch(taken, self.imgsz, source)
        t1 = time.perf_counter()
        features = self.head(x, frames)
        if features.tensors and features.tensors[0].is_cuda:
            import torch

            torch.cuda.synchronize()
        t2 = time.perf_counter()
        blob = self.codec.encode(features)
        t3 = time.perf_counter()
        timings = {
            "capture_ms": _capture_ms(taken),
            "preprocess_ms": (t1 - t0) * 1000.0, "head_ms": (t2 - t1) * 1000.0, "encode_ms": (t3 - t2) * 1000.0,
        }
        return blob, timings


@dataclass
class OffloadPipeline:
    imgsz: int
    fmt: str
    quality: int
    mode = "offload"

    @classmethod
    def build(cls, assignment: Assignment, model: Model) -> OffloadPipeline:
        image = assignment.image or {"format": "webp", "quality": 80}
        from splitinfer.codec.frames import available

        if not available(image["format"]):
            from splitinfer.errors import CodecError

            raise CodecError(f"image codec {image['format']} is not available on this head")
        return cls(imgsz=default_imgsz(model, assignment.imgsz), fmt=image["format"], quality=image["quality"])

    def process(self, taken: Taken, source: str) -> Tuple[bytes, Dict[str, float]]:
        """Frames → (the letterboxed frames as one image-codec payload, stage timings in ms)."""
        from splitinfer.codec.frames import encode_frames
        from splitinfer.features import FrameMeta

        t0 = time.perf_counter()
        images, frames = [], []
        for f, wall, _ in taken:
            padded, ratio, pad = letterbox(f.image, (self.imgsz, self.imgsz))
            images.append(padded)
            frames.append(FrameMeta(source=source, seq=f.index, timestamp=wall,
                                    orig_shape=(int(f.image.shape[0]), int(f.image.shape[1])), ratio=float(ratio),
                                    pad=(float(pad[0]), float(pad[1]))))
        t1 = time.perf_counter()
        blob = encode_frames(images, frames, fmt=self.fmt, quality=self.quality)
        t2 = time.perf_counter()
        return blob, {"capture_ms": _capture_ms(taken), "preprocess_ms": (t1 - t0) * 1000.0, "head_ms": 0.0,
                      "encode_ms": (t2 - t1) * 1000.0}


@dataclass
class LocalPipeline:
    model: Model
    imgsz: int
    conf: float = 0.25
    iou: float = 0.7
    mode = "local"

    @classmethod
    def build(cls, assignment: Assignment, model: Model) -> LocalPipeline:
        return cls(model=model, imgsz=default_imgsz(model, assignment.imgsz))

    def process(self, taken: Taken, source: str) -> Tuple[List[Dict[str, Any]], Dict[str, float]]:
        """Frames → (one detection record per frame, as a tail would publish it, with ``mode: local``; timings)."""
        import torch

        t0 = time.perf_counter()
        x, frames = _to_batch(taken, self.imgsz, source)
        t1 = time.perf_counter()
        with torch.no_grad():
            output = self.model(x.to(device=self.model.device, dtype=self.model.dtype))
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        detections = postprocess(output, frames, conf=self.conf, iou=self.iou, end2end=self.model.end2end,
                                 names=self.model.names)
        t3 = time.perf_counter()
        done = time.time()
        timings = {"capture_ms": _capture_ms(taken), "preprocess_ms": (t1 - t0) * 1000.0,
                   "head_ms": (t2 - t1) * 1000.0, "postprocess_ms": (t3 - t2) * 1000.0}
        records = []
        for det in detections:
            record = det.to_dict()
            record.update(head=source, tail=None, cut=None, mode="local", payload_bytes=0, timings={
                **{k: round(v, 3) for k, v in timings.items()},
                "e2e_ms": round(max(0.0, (done - det.frame.timestamp) * 1000.0), 3),
            })
            records.append(record)
        return records, timings


def build_pipeline(mode: str, assignment: Assignment, model: Model, tables: Sequence[CalibrationTable] = ()) -> Any:
    """The pipeline that runs ``assignment`` in ``mode`` on ``model``."""
    if mode == "local":
        return LocalPipeline.build(assignment, model)
    if mode == "offload":
        return OffloadPipeline.build(assignment, model)
    return HeadPipeline.build(assignment, model=model, tables=tables)


def codec_for(cut: int, model: Model, imgsz: int, settings: Dict[str, Any],
              tables: Sequence[CalibrationTable] = ()) -> Codec:
    """The encoder at layer ``cut``: sensitivity-weighted with the table calibrated for this model, cut and input
    size when ``tables`` hold one (``quality`` applies), else the version-1 codec (``bits``)."""
    for table in tables:
        if table.cut == cut and table.imgsz == imgsz and table.model in ("", model.fingerprint):
            return Codec(table=table, **settings)
    return Codec(**settings)
