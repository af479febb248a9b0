"""FeatureSet: the tensors that cross a cut, with what the tail needs to finish the job.

Shared by ``split`` (which produces and consumes it) and ``codec`` (which puts it on the wire); it knows
nothing of either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Tuple

if TYPE_CHECKING:  # torch is heavy; only the type checker needs it here
    import torch

__all__ = ["FeatureSet", "FrameMeta"]


@dataclass(frozen=True)
class FrameMeta:
    """Where one image of a batch came from and how it was letterboxed.

    ``orig_shape`` is the original frame's (height, width); ``ratio`` the letterbox gain and ``pad`` the
    (left, top) padding in network-input pixels, so boxes map back as ``(xy - pad) / ratio``.
    """

    source: str = ""
    seq: int = 0
    timestamp: float = 0.0
    orig_shape: Tuple[int, int] = (0, 0)
    ratio: float = 1.0
    pad: Tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class FeatureSet:
    """The live tensors at a cut, ordered by the layer that produced them.

    ``layers[i]`` is the index of the layer whose output is ``tensors[i]``; the tail runs layers ``cut..end``.
    ``input_shape`` is the network input's (height, width). ``model`` is the model's fingerprint (hex), so a
    tail can refuse features made by another model. ``frames`` has one entry per batch item.
    """

    cut: int
    layers: Tuple[int, ...]
    tensors: Tuple[torch.Tensor, ...]
    input_shape: Tuple[int, int]
    model: str = ""
    frames: Tuple[FrameMeta, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.tensors):
            raise ValueError(f"FeatureSet: {len(self.layers)} layer indices for {len(self.tensors)} tensors")
        if list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"FeatureSet: layer indices must be unique and ascending, got {list(self.layers)}")
        if any(i >= self.cut for i in self.layers):
            raise ValueError(f"FeatureSet: layers {list(self.layers)} must all be before the cut {self.cut}")
        batches = {int(t.shape[0]) for t in self.tensors}
        if len(batches) > 1:
            raise ValueError(f"FeatureSet: tensors disagree on batch size: {sorted(batches)}")
        if self.frames and batches and len(self.frames) != next(iter(batches)):
            raise ValueError(f"FeatureSet: {len(self.frames)} frame records for a batch of {next(iter(batches))}")

    @property
    def batch(self) -> int:
        return int(self.tensors[0].shape[0]) if self.tensors else 0

    @property
    def numel(self) -> int:
        """Values crossing the cut (all tensors, whole batch)."""
        return sum(int(t.numel()) for t in self.tensors)
