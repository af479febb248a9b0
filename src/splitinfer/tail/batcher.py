"""Decoding, grouping and running batches of features from several heads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from splitinfer.broker.client import Message
from splitinfer.broker.messages import Assignment, unpack_features
from splitinfer.broker.topics import Topics
from splitinfer.errors import CodecError
from splitinfer.features import FeatureSet
from splitinfer.splitting import Tail, postprocess
from splitinfer.splitting.model import Model

__all__ = ["Decoded", "TailPipeline"]


@dataclass
class Decoded:
    head: str
    features: FeatureSet
    stages: Dict[str, float]
    transit_ms: float
    decode_ms: float
    payload_bytes: int


@dataclass
class TailPipeline:
    model: Model
    decoder: Any
    tails: Dict[int, Tail]

    @classmethod
    def build(cls, assignment: Assignment, *, model_dir: str, device: str, half: bool) -> TailPipeline:
        from splitinfer.codec import Codec
        from splitinfer.node.models import load_assigned_model

        model = load_assigned_model(assignment, model_dir=model_dir, device=device, half=half)
        return cls(model=model, decoder=Codec(), tails={})

    def decode(self, msg: Message, topics: Topics) -> Decoded:
        parsed = topics.parse(msg.topic)
        sent, stages, blob = unpack_features(msg.payload)
        t = time.perf_counter()
        features = self.decoder.decode(blob, device=str(self.model.device))
        decode_ms = (time.perf_counter() - t) * 1000.0
        if any(f.source and f.source != parsed.device for f in features.frames):
            raise CodecError(f"features on {msg.topic} claim another source {features.frames[0].source!r}")
        return Decoded(parsed.device, features, stages, max(0.0, (msg.received_wall - sent) * 1000.0), decode_ms,
                       len(msg.payload))

    def group(self, decoded: List[Decoded]) -> List[List[Decoded]]:
        """Frames that can run as one batch: same cut, layers, input size and model."""
        groups: Dict[Tuple[Any, ...], List[Decoded]] = {}
        for d in decoded:
            f = d.features
            key = (f.cut, f.layers, f.input_shape, f.model, tuple(tuple(t.shape[1:]) for t in f.tensors))
            groups.setdefault(key, []).append(d)
        return list(groups.values())

    def run(self, group: List[Decoded], *, conf: float, iou: float) -> List[Tuple[str, Dict[str, Any]]]:
        import torch

        first = group[0].features
        tail = self.tails.get(first.cut)
        if tail is None:
            tail = self.tails[first.cut] = Tail(self.model, self.model.graph.check_cut(first.cut))
        frames = [meta for d in group for meta in d.features.frames]
        merged = FeatureSet(
            cut=first.cut, layers=first.layers, input_shape=first.input_shape, model=first.model, frames=tuple(frames),
            tensors=tuple(torch.cat([d.features.tensors[k] for d in group]) for k in range(len(first.tensors))),
        )
        t0 = time.perf_counter()
        output = tail(merged)
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
            per_frame_bytes = d.payload_bytes / d.features.batch
            for _ in range(d.features.batch):
                det = detections[k]
                k += 1
                record = det.to_dict()
                record.update(head=d.head, cut=first.cut, payload_bytes=int(per_frame_bytes), timings={
                    **{name: round(v, 3) for name, v in d.stages.items()},
                    "transit_ms": round(d.transit_ms, 3), "decode_ms": round(d.decode_ms, 3),
                    "tail_ms": round(tail_ms, 3), "postprocess_ms": round(post_ms, 3),
                    "e2e_ms": round((done - det.frame.timestamp) * 1000.0, 3) if det.frame.timestamp else 0.0,
                })
                results.append((d.head, record))
        return results
