"""One assignment's processing: model, cut and codec, applied to a batch of captured frames."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from splitinfer.errors import ModelError
from splitinfer.protocol import Assignment
from splitinfer.splitting import Head, load_model, split, to_batch
from splitinfer.splitting.model import Model, default_imgsz, file_sha256

__all__ = ["HeadPipeline", "load_assigned_model"]

_MODELS: Dict[Tuple[str, str, bool], Model] = {}


def resolve_model_path(name: str, model_dir: str) -> str:
    """A model named in an assignment, as this node sees it: absolute, relative to ``model_dir``, or as given."""
    if model_dir and not os.path.isabs(name):
        candidate = os.path.join(model_dir, name)
        if os.path.exists(candidate):
            return candidate
    return name


def load_assigned_model(assignment: Assignment, *, model_dir: str, device: str, half: bool) -> Model:
    """The assignment's model, checked against its sha256 and cached for the next assignment."""
    path = resolve_model_path(assignment.model, model_dir)
    key = (path, device, half)
    if key not in _MODELS:
        if assignment.sha256 and path.endswith(".pt"):
            try:
                actual = file_sha256(path)
            except OSError as exc:
                raise ModelError(f"{path}: cannot read the assigned model ({exc})") from exc
            if actual != assignment.sha256:
                raise ModelError(f"{path}: sha256 {actual[:12]}… differs from the assigned {assignment.sha256[:12]}…")
        _MODELS[key] = load_model(path, device=device, half=half)
    return _MODELS[key]


@dataclass
class HeadPipeline:
    head: Head
    codec: Any
    imgsz: int

    @classmethod
    def build(cls, assignment: Assignment, *, model_dir: str, device: str, half: bool) -> HeadPipeline:
        from splitinfer.codec import Codec

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
