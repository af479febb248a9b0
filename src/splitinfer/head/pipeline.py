"""One assignment's processing: model, cut and codec, applied to a batch of captured frames."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from splitinfer.broker.messages import Assignment
from splitinfer.node.models import load_assigned_model
from splitinfer.splitting import Head, split, to_batch
from splitinfer.splitting.model import Model, default_imgsz

__all__ = ["HeadPipeline"]

@dataclass
class HeadPipeline:
    head: Head
    codec: Any
    imgsz: int

    @classmethod
    def build(cls, assignment: Assignment, *, model_dir: str = "", device: str = "cpu", half: bool = False,
              model: Optional[Model] = None) -> HeadPipeline:
        """The pipeline for ``assignment``: its model (``model``, or loaded from ``model_dir``), cut and codec."""
        from splitinfer.codec import Codec

        if model is None:
            model = load_assigned_model(assignment, model_dir=model_dir, device=device, half=half)
        head, _ = split(model, assignment.cut)
        return cls(head=head, codec=Codec(**assignment.codec), imgsz=default_imgsz(model, assignment.imgsz))

    def process(self, taken: List[Tuple[Any, float, float]], source: str) -> Tuple[bytes, Dict[str, float]]:
        """Frames (frame, capture wall time, capture ms) → (codec blob, stage timings in ms)."""
        t0 = time.perf_counter()
        x, frames = to_batch(
            [f.image for f, _, _ in taken], self.imgsz, sources=[source] * len(taken),
            seqs=[f.index for f, _, _ in taken], timestamps=[wall for _, wall, _ in taken],
        )
        t1 = time.perf_counter()
        features = self.head(x, frames)
        if features.tensors and features.tensors[0].is_cuda:
            import torch

            torch.cuda.synchronize()
        t2 = time.perf_counter()
        blob = self.codec.encode(features)
        t3 = time.perf_counter()
        timings = {
            "capture_ms": sum(ms for _, _, ms in taken) / len(taken),
            "preprocess_ms": (t1 - t0) * 1000.0, "head_ms": (t2 - t1) * 1000.0, "encode_ms": (t3 - t2) * 1000.0,
        }
        return blob, timings
