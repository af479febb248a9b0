from __future__ import annotations

import pytest

from splitinfer.errors import ModelError
from splitinfer.splitting import LayerGraph

# A toy YOLO-shaped graph: stem convs, a skip, an upsample, a concat reaching back, and a multi-input head.
TOY_FROMS = [-1, -1, -1, -1, -1, -1, [-1, 3], -1, -1, [2, 5, 8]]
TOY_TYPES = ["Conv", "Conv", "C2f", "Conv", "SPPF", "Upsample", "Concat", "C2f", "Conv", "Detect"]


@pytest.fixture
def toy() -> LayerGraph:
    return LayerGraph.from_froms(TOY_FROMS, TOY_TYPES)


def test_live_set_is_every_output_read_across_the_cut(toy: LayerGraph) -> None:
    assert toy.live_set(1) == (0,)
    assert toy.live_set(4) == (2, 3)  # layer 4 reads 3; layers 6 and 9 read 3 and 2
    assert toy.live_set(6) == (2, 3, 5)
    assert toy.live_set(9) == (2, 5, 8)


def test_negative_froms_count_back_from_the_layer() -> None:
    graph = LayerGraph.from_froms([-1, -1, [-1, -2]], ["Conv", "Conv", "Concat"])
    assert graph.inputs[2] == (1, 0)
    assert graph.live_set(2) == (0, 1)


def test_every_numeric_cut_is_valid_and_out_of_range_is_refused(toy: LayerGraph) -> None:
    assert list(toy.cuts) == list(range(1, 10))
    for bad in (0, 10, -1):
        with pytest.raises(ModelError, match="out of range"):
            toy.live_set(bad)


def test_presets_follow_the_structure(toy: LayerGraph) -> None:
    assert toy.presets() == {"a": 4, "b": 5, "c": 8, "d": 9}
    assert toy.resolve_cut("B") == 5
    assert toy.resolve_cut("7") == 7
    assert toy.resolve_cut(3) == 3


@pytest.mark.parametrize("cut", ["e", "1.5", "", "layer3"])
def test_unknown_cut_names_the_choices(toy: LayerGraph, cut: str) -> None:
    with pytest.raises(ModelError, match=r"a\|b\|c\|d"):
        toy.resolve_cut(cut)


def test_presets_refused_on_a_graph_without_yolo_shape() -> None:
    graph = LayerGraph.from_froms([-1, -1, -1], ["Linear", "ReLU", "Linear"])
    with pytest.raises(ModelError, match="numeric cut"):
        graph.presets()


def test_forward_references_are_rejected() -> None:
    with pytest.raises(ModelError, match="layer 1 reads"):
        LayerGraph.from_froms([-1, [2]], ["Conv", "Concat"])
    with pytest.raises(ModelError, match="layer 0"):
        LayerGraph.from_froms([0], ["Conv"])
