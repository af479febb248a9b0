"""Decoding, checking, grouping and running batches of features from several heads.

Features come from devices and are not trusted: before any layer runs, a blob must be no larger than this
model's biggest live set at the assigned input size (the decoder refuses more before allocating), and the decoded
FeatureSet must be exactly what this model's head produces at its cut: the same model fingerprint, input size,
live layers, channels and spatial sizes, at most ``MAX_BATCH`` frames, finite values.

A head in offload mode sends its letterboxed frames instead (:mod:`splitinfer.codec.frames`): at most
``MAX_BATCH`` images of exactly the assigned input size, decoded only once their headers say so; the tail runs
the whole model on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from splitinfer.broker.client import Message
from splitinfer.broker.messages import Assignment, unpack_features
from splitinfer.broker.topics import Topics
from splitinfer.codec.table import CalibrationTable
from splitinfer.errors import CodecError, ModelError
from splitinfer.features import FeatureSet, FrameMeta
from splitinfer.node.models import load_assigned_model, load_assigned_tables
from splitinfer.splitting import Tail, layer_shapes, postprocess
from splitinfer.splitting.model import Model, default_imgsz

__all__ = ["MAX_BATCH", "Decoded", "TailPipeline"]

MAX_BATCH = 16  # frames in one head's blob


@dataclass
class Decoded:
    head: str
    features: Optional[FeatureSet]  # split: the tensors at the cut
    stages: Dict[str, float]
    transit_ms: float
    decode_ms: float
    payload_bytes: int
    clock_offset_ms: float = 0.0
    skewed: bool = False  # the head's clock is ahead of ours beyond what its offset estimate explains
    sent: float = 0.0  # the head's clock when it published
    received: float = 0.0  # our clock when the message arrived
    images: Any = None  # offload: B×3×H×W float in [0, 1]
    frames: Tuple[FrameMeta, ...] = ()  # offload: where each image came from

    @property
    def mode(self) -> str:
        return "split" if self.features is not None else "offload"

    @property
    def metas(self) -> Tuple[FrameMeta, ...]:
        return self.features.frames if self.features is not None else self.frames

    @property
    def batch(self) -> int:
        return len(self.metas)


@dataclass
class TailPipeline:
    model: Model
    decoder: Any
    tails: Dict[int, Tail]
    imgsz: int = 640
    shapes: Tuple[Tuple[int, ...], ...] = ()  # each layer's output shape for one frame at imgsz (no batch)

    @classmethod
    def build(cls, assignment: Assignment, *, model_dir: str = "", device: str = "cpu", half: bool = False,
              model: Optional[Model] = None, tables: Optional[Sequence[CalibrationTable]] = None) -> TailPipeline:
        from splitinfer.codec import Codec

        if model is None:
            model = load_assigned_model(assignment, model_dir=model_dir, device=device, half=half)
        if tables is None:
            tables = load_assigned_tables(assignment, model_dir=model_dir)
        imgsz = default_imgsz(model, assignment.imgsz)
        shapes = tuple(tuple(s[1:]) for s in layer_shapes(model, imgsz))
        biggest = max(sum(_numel(shapes[i]) for i in model.graph.live_set(c)) for c in model.graph.cuts)
        # a blob claiming more values is refused before allocation; a calibrated blob is read with the table it
        # names, among the assigned ones
        decoder = Codec(max_values=biggest * MAX_BATCH, tables=tables)
        return cls(model=model, decoder=decoder, tails={}, imgsz=imgsz, shapes=shapes)

    def decode(self, msg: Message, topics: Topics) -> Decoded:
        from splitinfer.codec.frames import is_frames

        parsed = topics.parse(msg.topic)
        sent, stages, blob = unpack_features(msg.payload)
        t = time.perf_counter()
        features: Optional[FeatureSet] = None
        images: Any = None
        frames: Tuple[FrameMeta, ...] = ()
        if is_frames(blob):
            images, frames = self._images(blob)
        else:
            features = self.decoder.decode(blob, device=str(self.model.device))
            self.check(features)
            frames = features.frames
        decode_ms = (time.perf_counter() - t) * 1000.0
        if any(f.source != parsed.device for f in frames):
            raise CodecError(f"features on {msg.topic} claim another source {frames[0].source!r}")
        offset = stages.pop("clock_offset_ms", 0.0)  # the head's estimate of our clock minus its clock
        transit = (msg.received_wall - sent) * 1000.0 - offset
        return Decoded(parsed.device, features, stages, max(0.0, transit), decode_ms, len(msg.payload),
                       clock_offset_ms=offset, skewed=transit < -50.0, sent=sent, received=msg.received_wall,
                       images=images, frames=tuple(frames) if features is None else ())

    def _images(self, blob: bytes) -> Tuple[Any, Tuple[FrameMeta, ...]]:
        """Offload: the letterboxed frames as the network's input batch (RGB, float in [0, 1])."""
        import numpy as np
        import torch

        from splitinfer.codec.frames import decode_frames

        images, frames, _ = decode_frames(blob, max_frames=MAX_BATCH, expect=(self.imgsz, self.imgsz))
        x = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float().div_(255.0)
        return x.to(self.model.device), tuple(frames)

    def check(self, features: FeatureSet) -> None:
        """ModelError unless ``features`` is exactly what this model's head sends at its cut (see the module)."""
        graph = self.model.graph
        if features.model != self.model.fingerprint:
            raise ModelError(f"features were made by model {features.model[:12] or '(none)'}…, this tail runs "
                             f"{self.model.fingerprint[:12]}…")
        if features.input_shape != (self.imgsz, self.imgsz):
            raise ModelError(f"features are for a {features.input_shape} input, this tail runs {self.imgsz}")
        if features.cut not in graph.cuts:
            raise ModelError(f"cut {features.cut} is not a cut of this model (1..{graph.num_layers - 1})")
        live = graph.live_set(features.cut)
        if tuple(features.layers) != live:
            raise ModelError(f"features carry layers {list(features.layers)}, cut {features.cut} needs {list(live)}")
        if not 1 <= features.batch <= MAX_BATCH or len(features.frames) != features.batch:
            raise ModelError(f"a blob of {features.batch} frames (1..{MAX_BATCH} allowed)")
        for i, t in zip(live, features.tensors):
            if tuple(t.shape[1:]) != self.shapes[i]:
                raise ModelError(f"layer {i}'s tensor is {tuple(t.shape[1:])}, this model makes {self.shapes[i]}")
            if not bool(t.isfinite().all()):
                raise CodecError(f"layer {i}'s tensor holds NaN or infinity")

    def group(self, decoded: List[Decoded]) -> List[List[Decoded]]:
        """Frames that can run as one batch: same cut, layers, input size and model (or all offloaded frames)."""
        groups: Dict[Tuple[Any, ...], List[Decoded]] = {}
        for d in decoded:
            f = d.features
            key: Tuple[Any, ...] = ("offload",) if f is None else (
                f.cut, f.layers, f.input_shape, f.model, tuple(tuple(t.shape[1:]) for t in f.tensors))
            groups.setdefault(key, []).append(d)
        return list(groups.values())

    def _forward(self, group: List[Decoded]) -> Tuple[Any, Optional[int]]:
        """The group's output: the tail layers on its features, or the whole model on its offloaded frames."""
        import torch

        first = group[0].features
        if first is None:
            with torch.no_grad():
                return self.model(torch.cat([d.images for d in group]).to(self.model.dtype)), None
        tail = self.tails.get(first.cut)
        if tail is None:
            tail = self.tails[first.cut] = Tail(self.model, self.model.graph.check_cut(first.cut))
        merged = FeatureSet(
            cut=first.cut, layers=first.layers, input_shape=first.input_shape, model=first.model,
            frames=tuple(meta for d in group for meta in d.metas),
            tensors=tuple(torch.cat([d.features.tensors[k] for d in group if d.features is not None])
                          for k in range(len(first.tensors))),
        )
        return tail(merged), first.cut

    def run(self, group: List[Decoded], *, conf: float, iou: float) -> List[Tuple[str, Dict[str, Any]]]:
        import torch

        frames = [meta for d in group for meta in d.metas]
        t0 = time.perf_counter()
        output, cut = self._forward(group)
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        detections = postprocess(output, frames, conf=conf, iou=iou, end2end=self.model.end2end,
                                 names=self.model.names)
        t2 = time.perf_counter()
        done = time.time()
        tail_ms, post_ms = (t1 - t0) * 1000.0, (t2 - t1) * 1000.0
        results = []
        k = 0
        for d in group:
            per_frame_bytes = d.payload_bytes / d.batch
            for _ in range(d.batch):
                det = detections[k]
                k += 1
                record = det.to_dict()
                record.update(head=d.head, cut=cut, mode=d.mode, payload_bytes=int(per_frame_bytes),
                              clock={"sent": d.sent, "received": d.received}, timings={
                    **{name: round(v, 3) for name, v in d.stages.items()},
                    "transit_ms": round(d.transit_ms, 3), "decode_ms": round(d.decode_ms, 3),
                    "tail_ms": round(tail_ms, 3), "postprocess_ms": round(post_ms, 3),
                    "e2e_ms": _e2e_ms(done, det.frame.timestamp, d.clock_offset_ms),
                })
                results.append((d.head, record))
        return results


def _numel(shape: Tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _e2e_ms(done: float, captured: float, offset_ms: float) -> float:
    """Capture (head clock) to detections ready (our clock), corrected by the head's offset estimate; never
    negative (an unknown skew leaves 0 rather than a negative latency)."""
    if not captured:
        return 0.0
    return round(max(0.0, (done - captured) * 1000.0 - offset_ms), 3)
