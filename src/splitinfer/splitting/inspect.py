"""What crosses each cut of a model: the numbers behind ``splitctl inspect``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from .model import Model
from .runner import layer_shapes

__all__ = ["CutInfo", "LayerInfo", "inspect_cuts"]


@dataclass(frozen=True)
class LayerInfo:
    index: int
    type: str
    inputs: Tuple[int, ...]
    shape: Tuple[int, ...]
    params: int


@dataclass(frozen=True)
class CutInfo:
    """Cut ``cut``: the head runs layers ``0..cut-1``; ``live`` are the layers whose outputs cross."""

    cut: int
    preset: Optional[str]
    live: Tuple[int, ...]
    shapes: Tuple[Tuple[int, ...], ...]
    values: int

    def bytes_at(self, bits: int) -> int:
        return (self.values * bits + 7) // 8

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(bytes_fp32=self.bytes_at(32), bytes_8bit=self.bytes_at(8), bytes_4bit=self.bytes_at(4))
        return d


def inspect_cuts(model: Model, imgsz: int = 640) -> Tuple[List[LayerInfo], List[CutInfo]]:
    """Layers with their output shapes for one image at ``imgsz``, and every cut's live set and size."""
    shapes = layer_shapes(model, imgsz)
    layers = [
        LayerInfo(i, t, f, shapes[i], sum(p.numel() for p in model.layers[i].parameters()))
        for i, t, f in model.graph.describe()
    ]
    presets = {n: k for k, n in model.graph.presets().items()} if _has_presets(model) else {}
    cuts = []
    for n in model.graph.cuts:
        live = model.graph.live_set(n)
        live_shapes = tuple(shapes[i] for i in live)
        values = sum(_numel(s) for s in live_shapes)
        cuts.append(CutInfo(n, presets.get(n), live, live_shapes, values))
    return layers, cuts


def _numel(shape: Tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def _has_presets(model: Model) -> bool:
    from splitinfer.errors import ModelError

    try:
        model.graph.presets()
    except ModelError:
        return False
    return True
