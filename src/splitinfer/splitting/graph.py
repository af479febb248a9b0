"""The layer graph of an Ultralytics model, and what crosses each cut.

Pure logic on plain data: every layer ``i`` reads the outputs named by its ``f`` (``-1`` is the previous
layer, other negatives count back from ``i``, non-negatives are absolute). A cut ``N`` means the head runs
layers ``0..N-1`` and the tail runs ``N..end``; the *live set* at ``N`` is every layer before ``N`` whose
output some layer at or after ``N`` reads. Nothing here is specific to one model family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

from splitinfer.errors import ModelError

__all__ = ["PRESETS", "LayerGraph"]

PRESETS = ("a", "b", "c", "d")

From = Union[int, Sequence[int]]


@dataclass(frozen=True)
class LayerGraph:
    """Inputs and type names of each layer, in execution order."""

    inputs: Tuple[Tuple[int, ...], ...]
    types: Tuple[str, ...]

    @classmethod
    def from_froms(cls, froms: Sequence[From], types: Sequence[str]) -> LayerGraph:
        """Build from each layer's raw ``f`` (as Ultralytics stores it) and its module type name."""
        if len(froms) != len(types):
            raise ModelError(f"layer graph: {len(froms)} input lists for {len(types)} layers")
        inputs = []
        for i, f in enumerate(froms):
            raw = [f] if isinstance(f, int) else list(f)
            absolute = tuple(j if j >= 0 else i + j for j in raw)
            if i == 0:
                if absolute != (-1,):
                    raise ModelError(f"layer graph: layer 0 must read the network input, reads {raw}")
            elif any(j < 0 or j >= i for j in absolute):
                raise ModelError(f"layer graph: layer {i} reads {raw}, which is not an earlier layer")
            inputs.append(absolute)
        return cls(tuple(inputs), tuple(types))

    @property
    def num_layers(self) -> int:
        return len(self.inputs)

    @property
    def cuts(self) -> range:
        """Every valid numeric cut: the head runs at least one layer, the tail at least one."""
        return range(1, self.num_layers)

    def check_cut(self, cut: int) -> int:
        if cut not in self.cuts:
            raise ModelError(f"cut {cut} is out of range: this model has {self.num_layers} layers, so a numeric "
                             f"cut is 1..{self.num_layers - 1} (or a preset a|b|c|d)")
        return cut

    def live_set(self, cut: int) -> Tuple[int, ...]:
        """Layers before ``cut`` whose outputs are read at or after it, ascending."""
        self.check_cut(cut)
        return tuple(sorted({j for i in range(cut, self.num_layers) for j in self.inputs[i] if j < cut}))

    def keep_after(self, start: int, stop: int) -> Dict[int, int]:
        """For layers ``start..stop-1``: the last of them that reads each output (by producing layer).

        A runner frees an output once its last reader inside the range has run, unless it crosses the cut.
        """
        last: Dict[int, int] = {}
        for i in range(start, stop):
            for j in self.inputs[i]:
                if j >= 0:
                    last[j] = i
        return last

    def presets(self) -> Dict[str, int]:
        """Named cuts, derived from the structure so every YOLO family of this shape gets them.

        - ``a`` early backbone: after the third stride-2 ``Conv`` (stride 8), before the first block that widens
          it; one small tensor crosses.
        - ``b`` end of backbone: just before the neck's first ``Upsample``; the backbone's P3, P4, P5 cross.
        - ``c`` mid-neck: after the top-down path, before the first downsampling ``Conv`` of the bottom-up path.
        - ``d`` just before ``Detect``: the three detection feature maps cross.
        """
        types = self.types
        convs = [i for i, t in enumerate(types) if t == "Conv"]
        upsamples = [i for i, t in enumerate(types) if t == "Upsample"]
        if len(convs) < 3 or not upsamples:
            raise ModelError("this model has no YOLO backbone/neck shape (three stride-2 Convs and an Upsample); "
                             "use a numeric cut")
        a = convs[2] + 1
        b = upsamples[0]
        c = next((i for i in convs if i > upsamples[-1]), None)
        d = self.num_layers - 1
        if c is None or not (0 < a < b < c < d):
            raise ModelError(f"cannot place presets on this model's layers {list(types)}; use a numeric cut")
        return {"a": a, "b": b, "c": c, "d": d}

    def resolve_cut(self, cut: Union[int, str]) -> int:
        """A preset letter or a numeric cut (int or digits) → a checked numeric cut."""
        if isinstance(cut, str):
            key = cut.strip().lower()
            if key in PRESETS:
                return self.presets()[key]
            if not key.lstrip("-").isdigit():
                raise ModelError(f"unknown cut {cut!r}: expected a|b|c|d or a layer number 1..{self.num_layers - 1}")
            cut = int(key)
        return self.check_cut(int(cut))

    def describe(self) -> List[Tuple[int, str, Tuple[int, ...]]]:
        """(index, type, inputs) per layer, for display."""
        return [(i, t, f) for i, (t, f) in enumerate(zip(self.types, self.inputs))]
