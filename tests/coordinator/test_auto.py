"""``--cut auto``: the cost model and the planner on synthetic profiles (no model, no broker)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from splitinfer.broker.messages import Assignment
from splitinfer.coordinator import DeviceState, Override, Policy, plan
from splitinfer.coordinator.cost import Link, best_latency, best_shared, cut_costs, shared_fps

CODEC = {"bits": 4}
POLICY = Policy(model="m.pt", imgsz=320, cut="auto", codec=CODEC, auto_fallback="b")
# payload bytes per cut 1..5: cut 3 is the narrowest point, cut 1 the widest
SIZES = {1: 200_000, 2: 80_000, 3: 10_000, 4: 40_000, 5: 30_000}


def head_profile(layer_ms: float = 10.0, mbit: Optional[float] = 100.0, rtt_ms: float = 1.0) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "model": "m.pt", "imgsz": 320, "batch": 1, "codec": CODEC, "num_layers": 6,
        "presets": {"a": 1, "b": 2, "c": 4, "d": 5}, "layer_ms": [layer_ms] * 6, "preprocess_ms": 1.0,
        "cuts": {str(c): {"bytes": b, "encode_ms": 0.5, "decode_ms": 0.25} for c, b in SIZES.items()},
    }
    if mbit is not None:
        p["link"] = {"bandwidth_bps": mbit * 1e6, "rtt_ms": rtt_ms}
    return p


def tail_profile(layer_ms: float = 1.0, batch_layer_ms: Optional[float] = None) -> Dict[str, Any]:
    p: Dict[str, Any] = {"model": "m.pt", "imgsz": 320, "batch": 8, "layer_ms": [layer_ms] * 6,
                         "postprocess_ms": 2.0}
    if batch_layer_ms is not None:
        p["batch_layer_ms"] = [batch_layer_ms] * 6
    return p


def devices(*heads: str) -> Dict[str, DeviceState]:
    out = {h: DeviceState(h, "head", True) for h in heads}
    out["t1"] = DeviceState("t1", "tail", True)
    return out


def cost_of(costs: List[Any], cut: int) -> Any:
    return next(c for c in costs if c.cut == cut)


def test_latency_is_head_plus_transfer_plus_tail() -> None:
    costs = cut_costs(head_profile(layer_ms=10.0), tail_profile(layer_ms=1.0), Link(8e6, rtt_ms=4.0))
    c3 = cost_of(costs, 3)
    assert c3.head_ms == pytest.approx(1.0 + 3 * 10.0 + 0.5)
    assert c3.tail_ms == pytest.approx(0.25 / 10 + 3 * 1.0 + 2.0)  # decode timed on the head, 10x the tail's time
    assert c3.transfer_ms == pytest.approx((10_000 + 96) * 1.04 * 8 / 8e6 * 1000 + 2.0)
    assert c3.latency_ms == pytest.approx(c3.head_ms + c3.transfer_ms + c3.tail_ms)
    assert [c.cut for c in costs] == [1, 2, 3, 4, 5]  # cuts are 1..N-1: both sides run at least one layer


def test_decoding_is_charged_at_the_tails_speed_not_the_heads() -> None:
    """The head times decoding (features and its offload image); the tail runs it. A camera 40x slower than the
    server must not make offload look 40x costlier to decode."""
    from splitinfer.coordinator.cost import mode_costs, tail_speed

    head = dict(head_profile(layer_ms=40.0), images={"jpeg": {"bytes": 20_000, "encode_ms": 8.0, "decode_ms": 80.0}})
    tail = tail_profile(layer_ms=1.0)
    assert tail_speed(head, tail) == pytest.approx(6 / 240)
    offload = next(c for c in mode_costs(head, tail, Link(8e6, rtt_ms=4.0), offload="jpeg") if c.mode == "offload")
    assert offload.tail_ms == pytest.approx(80.0 / 40 + 6 * 1.0 + 2.0)
    assert tail_speed(head, {"layer_ms": []}) == 1.0  # no whole-model time to compare: charged as measured
    slow_tail = cost_of(cut_costs(head_profile(layer_ms=1.0), tail_profile(layer_ms=2.0), Link(8e6, rtt_ms=4.0)), 3)
    assert slow_tail.tail_ms == pytest.approx(0.25 * 2 + 3 * 2.0 + 2.0)


def test_fast_link_and_fast_tail_cut_early() -> None:
    result = plan(devices("cam"), POLICY, {}, {"cam": head_profile(mbit=10_000), "t1": tail_profile()})
    assert result["cam"].cut == "1"
    assert result["cam"].reason.startswith("auto: lowest predicted latency")
    assert result["cam"].predicted_ms is not None and result["cam"].prediction["cut"] == 1


def test_slow_link_picks_the_cut_with_fewest_bytes() -> None:  # a slow head: running it all there is slower still
    result = plan(devices("cam"), POLICY, {}, {"cam": head_profile(layer_ms=50.0, mbit=1.0), "t1": tail_profile()})
    assert result["cam"].cut == "3"
    assert result["cam"].prediction["bytes"] == SIZES[3]
    assert result["cam"].prediction["bandwidth_bps"] == 1_000_000


def test_slow_tail_pushes_the_work_onto_the_head() -> None:
    result = plan(devices("cam"), POLICY, {}, {"cam": head_profile(layer_ms=1.0, mbit=10_000),
                                               "t1": tail_profile(layer_ms=50.0)})
    assert (result["cam"].mode, result["cam"].cut) == ("local", "")
    assert result["cam"].prediction["mode"] == "local" and result["cam"].prediction["bytes"] == 0


def test_a_slow_link_with_a_slow_head_and_no_cut_that_pays_runs_local() -> None:
    result = plan(devices("cam"), POLICY, {}, {"cam": head_profile(layer_ms=10.0, mbit=1.0), "t1": tail_profile()})
    assert result["cam"].mode == "local" and "local" in result["cam"].reason


def _with_image(profile: Dict[str, Any], nbytes: float) -> Dict[str, Any]:
    return dict(profile, images={"webp": {"bytes": nbytes, "encode_ms": 2.0, "decode_ms": 1.0}})


def test_offload_is_chosen_only_for_heads_the_operator_allowed() -> None:
    # a slow head on a fast link: sending the frame to the fast tail wins, where it is allowed
    profiles = {"cam": _with_image(head_profile(layer_ms=50.0, mbit=10_000), 20_000), "t1": tail_profile()}
    allowed = plan(devices("cam"), Policy(model="m.pt", imgsz=320, cut="auto", codec=CODEC, offload=["cam"]), {},
                   profiles)
    assert allowed["cam"].mode == "offload" and allowed["cam"].image == {"format": "webp", "quality": 80}
    assert allowed["cam"].prediction["bytes"] == 20_000
    private = plan(devices("cam"), POLICY, {}, profiles)
    assert private["cam"].mode == "split" and private["cam"].cut == "1"


def test_a_fixed_offload_for_a_head_not_allowed_splits_instead_and_says_why() -> None:
    policy = Policy(model="m.pt", imgsz=320, cut="offload", codec=CODEC)
    result = plan(devices("cam"), policy, {}, {"cam": head_profile(), "t1": tail_profile()})
    assert (result["cam"].mode, result["cam"].cut) == ("split", "b")
    assert "not allowed" in result["cam"].reason


def test_fixed_local_and_offload_modes_get_predictions() -> None:
    profiles = {"cam": _with_image(head_profile(), 20_000), "t1": tail_profile()}
    for mode in ("local", "offload"):
        policy = Policy(model="m.pt", imgsz=320, cut=mode, codec=CODEC, offload=["cam"])
        result = plan(devices("cam"), policy, {}, profiles)["cam"]
        assert (result.mode, result.cut, result.prediction["mode"]) == (mode, "", mode) and result.predicted_ms


def test_waits_for_profiles_on_the_fallback_cut() -> None:
    result = plan(devices("cam"), POLICY, {}, {"cam": head_profile(mbit=None)})
    assert result["cam"].cut == "b"
    assert "cam's link measurement" in result["cam"].reason and "t1's profile" in result["cam"].reason
    assert result["cam"].predicted_ms is None


def test_profiles_of_another_model_or_codec_do_not_count() -> None:
    wrong = dict(head_profile(), codec={"bits": 2})
    result = plan(devices("cam"), POLICY, {}, {"cam": wrong, "t1": tail_profile()})
    assert result["cam"].cut == "b" and "cam's profile" in result["cam"].reason


def test_no_live_tail_runs_local_unless_fallback_is_forbidden() -> None:
    result = plan({"cam": DeviceState("cam", "head", True)}, POLICY, {}, {})
    assert result["cam"].mode == "local" and "no live tail" in result["cam"].reason
    forbidden = Policy(model="m.pt", imgsz=320, cut="auto", codec=CODEC, no_fallback=["cam"])
    result = plan({"cam": DeviceState("cam", "head", True)}, forbidden, {}, {})
    assert (result["cam"].mode, result["cam"].cut, result["cam"].fallback) == ("split", "b", False)


def test_fixed_cuts_get_a_prediction_too() -> None:
    policy = Policy(model="m.pt", imgsz=320, cut="c", codec=CODEC)
    result = plan(devices("cam"), policy, {}, {"cam": head_profile(), "t1": tail_profile()})
    assert result["cam"].cut == "c" and result["cam"].prediction["cut"] == 4
    assert result["cam"].reason == "fixed cut c" and result["cam"].predicted_ms and result["cam"].predicted_fps


def test_override_to_auto_for_one_head() -> None:
    policy = Policy(model="m.pt", imgsz=320, cut="b", codec=CODEC, overrides={"cam": Override(cut="auto")})
    result = plan(devices("cam"), policy, {}, {"cam": head_profile(layer_ms=50.0, mbit=1.0), "t1": tail_profile()})
    assert result["cam"].cut == "3"


def test_replanning_with_the_same_inputs_keeps_the_generation() -> None:
    profiles = {"cam": head_profile(mbit=1.0), "t1": tail_profile()}
    first = plan(devices("cam"), POLICY, {}, profiles)
    assert plan(devices("cam"), POLICY, first, profiles) == first


def test_a_bandwidth_change_moves_the_cut() -> None:
    first = plan(devices("cam"), POLICY, {}, {"cam": head_profile(layer_ms=50.0, mbit=1.0), "t1": tail_profile()})
    second = plan(devices("cam"), POLICY, first, {"cam": head_profile(layer_ms=50.0, mbit=10_000),
                                                  "t1": tail_profile()})
    assert (first["cam"].cut, second["cam"].cut) == ("3", "1")
    assert second["cam"].generation == first["cam"].generation + 1


def test_hysteresis_keeps_a_nearly_best_cut() -> None:
    costs = cut_costs(head_profile(), tail_profile(), Link(1e6, 1.0))
    best = best_latency(costs)
    runner_up = sorted(costs, key=lambda c: c.latency_ms)[1]
    slack = runner_up.latency_ms / best.latency_ms - 1
    assert best_latency(costs, keep=runner_up.key, hysteresis=slack + 0.01).cut == runner_up.cut
    assert best_latency(costs, keep=runner_up.key, hysteresis=slack / 2).cut == best.cut


def test_heads_sharing_a_slow_tail_move_work_onto_the_heads() -> None:
    # alone, each head would cut early (the tail is faster per frame); four of them would swamp it
    profiles = {h: head_profile(layer_ms=4.0, mbit=10_000) for h in ("c1", "c2", "c3", "c4")}
    profiles["t1"] = tail_profile(layer_ms=3.0, batch_layer_ms=3.0)
    alone = plan(devices("c1"), POLICY, {}, {"c1": profiles["c1"], "t1": profiles["t1"]})
    shared = plan(devices("c1", "c2", "c3", "c4"), POLICY, {}, profiles)
    assert alone["c1"].cut == "1"
    assert all(shared[h].mode == "local" or int(shared[h].cut) > 1 for h in ("c1", "c2", "c3", "c4"))
    assert "highest sustainable fps" in shared["c1"].reason
    assert shared["c1"].predicted_fps is not None and alone["c1"].predicted_fps is not None
    costs = {h: cut_costs(profiles[h], profiles["t1"], Link(1e10, 1.0)) for h in ("c1", "c2", "c3", "c4")}
    naive = {h: cost_of(c, 1) for h, c in costs.items()}
    assert shared_fps(best_shared(costs)) > shared_fps(naive)


def test_assignment_json_carries_the_explanation_and_old_json_still_parses() -> None:
    a = Assignment(generation=3, model="m", cut="7", reason="auto: x", predicted_ms=41.5, predicted_fps=12.0,
                   prediction={"head_ms": 1.0})
    assert Assignment.from_json(a.to_json()) == a
    old = Assignment.from_json(b'{"generation": 1, "model": "m", "cut": "b"}')
    assert old.predicted_ms is None and old.reason == "" and old.prediction == {}
    assert a.same_pipeline(Assignment(generation=4, model="m", cut="7", reason="fixed cut", predicted_ms=50.0))
