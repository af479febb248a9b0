"""Head and Tail: the two halves of a model split at a cut.

Both run Ultralytics' own layer loop (``BaseModel._predict_once``), the head over layers ``0..cut-1`` and the
tail over ``cut..end``, so on the same device and dtype ``tail(head(x))`` is bitwise ``model(x)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from splitinfer.errors import ModelError
from splitinfer.features import FeatureSet, FrameMeta

from .model import Model, load_model

if TYPE_CHECKING:
    import torch

__all__ = ["Head", "Tail", "split"]


def _gather(layer: Any, i: int, x: Any, outputs: Dict[int, Any]) -> Any:
    """The input of layer ``i``, as ``_predict_once`` builds it."""
    f = layer.f
    if f == -1:
        return x
    if isinstance(f, int):
        return outputs[i + f if f < 0 else f]
    return [x if j == -1 else outputs[i + j if j < 0 else j] for j in f]


def _run(model: Model, start: int, stop: int, x: Any, outputs: Dict[int, Any], keep: Sequence[int]) -> Any:
    """Run layers ``start..stop-1``; ``outputs`` holds every output a later layer reads. Returns the last one."""
    last_reader = model.graph.keep_after(start, stop)
    keep_set = set(keep)
    layers = model.layers
    for i in range(start, stop):
        layer = layers[i]
        x = layer(_gather(layer, i, x, outputs))
        outputs[i] = x
        for j in [j for j, last in last_reader.items() if last == i and j not in keep_set]:
            outputs.pop(j, None)  # no later layer in range needs it, and it does not cross the cut
    return x


class Head:
    """Runs layers ``0..cut-1`` on a batch of images and returns the live tensors as a FeatureSet."""

    def __init__(self, model: Model, cut: int) -> None:
        self.model = model
        self.cut = cut
        self.live = model.graph.live_set(cut)

    def __call__(self, x: torch.Tensor, frames: Optional[Sequence[FrameMeta]] = None) -> FeatureSet:
        """``x``: float B×3×H×W in [0, 1], H and W multiples of the model's stride."""
        import torch

        _check_input(self.model, x)
        x = x.to(device=self.model.device, dtype=self.model.dtype)
        outputs: Dict[int, Any] = {}
        with torch.no_grad():
            _run(self.model, 0, self.cut, x, outputs, keep=self.live)
        tensors = tuple(outputs[i] for i in self.live)
        for i, t in zip(self.live, tensors):
            if not isinstance(t, torch.Tensor):
                raise ModelError(f"layer {i} outputs {type(t).__name__}, not a tensor: cut {self.cut} cannot be sent")
        return FeatureSet(
            cut=self.cut,
            layers=self.live,
            tensors=tensors,
            input_shape=(int(x.shape[2]), int(x.shape[3])),
            model=self.model.fingerprint,
            frames=tuple(frames) if frames is not None else tuple(FrameMeta() for _ in range(x.shape[0])),
        )

    def __repr__(self) -> str:
        return f"Head(cut={self.cut}, live={list(self.live)})"


class Tail:
    """Runs layers ``cut..end`` on a FeatureSet and returns exactly what the unsplit model returns."""

    def __init__(self, model: Model, cut: int) -> None:
        self.model = model
        self.cut = cut
        self.live = model.graph.live_set(cut)

    def __call__(self, features: FeatureSet) -> Any:
        import torch

        self.check(features)
        outputs: Dict[int, Any] = {
            i: t.to(device=self.model.device, dtype=self.model.dtype) for i, t in zip(features.layers, features.tensors)
        }
        x = outputs.get(self.cut - 1)
        with torch.no_grad():
            return _run(self.model, self.cut, self.model.graph.num_layers, x, outputs, keep=())

    def check(self, features: FeatureSet) -> None:
        """Refuse features that this tail cannot finish: another model, another cut, other layers."""
        theirs, ours = features.model, self.model.fingerprint
        if theirs != ours:
            raise ModelError(f"features were made by model {features.model[:12]}…, this tail runs "
                             f"{self.model.fingerprint[:12]}…")
        if features.cut != self.cut:
            raise ModelError(f"features are cut at layer {features.cut}, this tail starts at {self.cut}")
        if tuple(features.layers) != self.live:
            raise ModelError(f"features carry layers {list(features.layers)}, cut {self.cut} needs {list(self.live)}")

    def __repr__(self) -> str:
        return f"Tail(cut={self.cut}, live={list(self.live)})"


def split(model: Union[Model, Any], cut: Union[int, str]) -> Tuple[Head, Tail]:
    """Split ``model`` at ``cut`` (a preset ``a|b|c|d`` or a layer number): the head runs layers ``0..N-1``."""
    m = model if isinstance(model, Model) else load_model(model)
    n = m.graph.resolve_cut(cut)
    return Head(m, n), Tail(m, n)


def _check_input(model: Model, x: Any) -> None:
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ModelError(f"head input must be a float tensor B×3×H×W, got {shape}")
    if not x.is_floating_point():
        raise ModelError(f"head input must be float in [0, 1], got {x.dtype} (divide uint8 images by 255)")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % model.stride or w % model.stride:
        raise ModelError(f"head input {h}×{w} is not a multiple of the model's stride {model.stride}; letterbox it")


def layer_shapes(model: Model, imgsz: int, batch: int = 1) -> List[Tuple[int, ...]]:
    """Each layer's output shape for one dummy batch (for inspection). Non-tensor outputs give ()."""
    import torch

    x = torch.zeros(batch, 3, imgsz, imgsz, device=model.device, dtype=model.dtype)
    outputs: Dict[int, Any] = {}
    shapes: List[Tuple[int, ...]] = []
    with torch.no_grad():
        for i, layer in enumerate(model.layers[:-1]):
            x = layer(_gather(layer, i, x, outputs))
            outputs[i] = x
            shapes.append(tuple(x.shape) if isinstance(x, torch.Tensor) else ())
    shapes.append(())
    return shapes
