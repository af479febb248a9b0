from __future__ import annotations

from typing import Sequence, Tuple

import pytest
import torch

from splitinfer import FeatureSet, FrameMeta


def make_features(
    shapes: Sequence[Tuple[int, ...]] = ((1, 8, 16, 16), (1, 16, 8, 8)),
    *,
    seed: int = 0,
    source: str = "cam-1",
    seq: int = 0,
    dtype: torch.dtype = torch.float32,
) -> FeatureSet:
    """SiLU-like feature maps (a mass just below zero, a long positive tail), as a YOLO head produces."""
    gen = torch.Generator().manual_seed(seed)
    tensors = tuple(torch.nn.functional.silu(torch.randn(*s, generator=gen) * 2).to(dtype) for s in shapes)
    batch = shapes[0][0]
    frames = tuple(
        FrameMeta(
            source=f"{source}" if batch == 1 else f"{source}-{b}",
            seq=seq,
            timestamp=1.7e9 + seq / 30,
            orig_shape=(480, 640),
            ratio=0.5,
            pad=(0.0, 40.0),
        )
        for b in range(batch)
    )
    return FeatureSet(
        cut=len(shapes) * 2 + 1,
        layers=tuple(range(1, 2 * len(shapes), 2)),
        tensors=tensors,
        input_shape=(64, 64),
        model="c0ffee",
        frames=frames,
    )


@pytest.fixture
def features() -> FeatureSet:
    return make_features()
