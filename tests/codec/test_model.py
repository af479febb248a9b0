"""The codec on a real Ultralytics model's live tensors (yolo11n.yaml, cut b)."""

from __future__ import annotations

import pytest
import torch

from splitinfer import Codec

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def split_b():  # type: ignore[no-untyped-def]
    from splitinfer.splitting import load_model, split

    torch.manual_seed(0)
    head, tail = split(load_model("yolo11n.yaml"), "b")
    x = torch.rand(1, 3, 320, 320)
    return head, tail, head(x)


def test_tail_runs_on_decoded_features_and_8_bits_stays_close(split_b) -> None:  # type: ignore[no-untyped-def]
    head, tail, features = split_b
    blob = Codec(bits=8).encode(features)
    decoded = Codec().decode(blob)
    assert decoded.layers == features.layers == tuple(head.live)
    ref, out = tail(features), tail(decoded)
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    out = out[0] if isinstance(out, (tuple, list)) else out
    assert float((ref - out).abs().max()) < 0.05 * float(ref.abs().max())


def test_two_bits_is_several_times_smaller_than_eight(split_b) -> None:  # type: ignore[no-untyped-def]
    _, _, features = split_b
    small, large = (len(Codec(bits=b).encode(features)) for b in (2, 8))
    assert 8 * small / features.numel < 2.0
    assert small * 3 < large
