from __future__ import annotations

from typing import Dict

from splitinfer.broker.messages import Assignment
from splitinfer.coordinator import DeviceState, Override, Policy, plan

POLICY = Policy(model="yolo11n.pt", sha256="ab" * 32, imgsz=640, cut="b", codec={"bits": 4})


def fleet(heads: int, tails: Dict[str, bool]) -> Dict[str, DeviceState]:
    devices = {f"cam-{i}": DeviceState(f"cam-{i}", "head", True) for i in range(heads)}
    devices.update({t: DeviceState(t, "tail", up) for t, up in tails.items()})
    return devices


def routes(assignments: Dict[str, Assignment]) -> Dict[str, str]:
    return {d: a.route for d, a in assignments.items() if d.startswith("cam-")}


def test_heads_are_balanced_across_live_tails() -> None:
    result = plan(fleet(4, {"t1": True, "t2": True}), POLICY, {})
    assert sorted(routes(result).values()) == ["t1", "t1", "t2", "t2"]
    assert result["t1"].heads == sorted(h for h, t in routes(result).items() if t == "t1")
    assert all(a.generation == 1 for a in result.values())
    assert result["cam-0"].cut == "b" and result["cam-0"].codec == {"bits": 4} and result["cam-0"].sha256 == "ab" * 32


def test_unchanged_plan_keeps_generations() -> None:
    devices = fleet(3, {"t1": True, "t2": True})
    first = plan(devices, POLICY, {})
    assert plan(devices, POLICY, first) == first


def test_a_dead_tail_hands_its_heads_to_the_live_one() -> None:
    first = plan(fleet(4, {"t1": True, "t2": True}), POLICY, {})
    second = plan(fleet(4, {"t1": True, "t2": False}), POLICY, first)
    assert set(routes(second).values()) == {"t1"}
    moved = [h for h in routes(first) if first[h].route == "t2"]
    stayed = [h for h in routes(first) if first[h].route == "t1"]
    assert all(second[h].generation == 2 for h in moved)
    assert all(second[h].generation == 1 for h in stayed)  # untouched heads are not disturbed
    assert "t2" not in second


def test_no_live_tail_means_no_route() -> None:
    result = plan(fleet(2, {"t1": False}), POLICY, {})
    assert set(routes(result).values()) == {""}


def test_a_new_tail_takes_its_fair_share() -> None:
    first = plan(fleet(4, {"t1": True}), POLICY, {})
    second = plan(fleet(4, {"t1": True, "t2": True}), POLICY, first)
    assert sorted(routes(second).values()) == ["t1", "t1", "t2", "t2"]


def test_overrides_win_over_defaults() -> None:
    policy = Policy(model="m", cut="b", codec={"bits": 4},
                    overrides={"cam-1": Override(cut="a", codec={"bits": 6}, batch=2)})
    result = plan(fleet(2, {"t1": True}), policy, {})
    assert (result["cam-0"].cut, result["cam-0"].codec, result["cam-0"].batch) == ("b", {"bits": 4}, 1)
    assert (result["cam-1"].cut, result["cam-1"].codec, result["cam-1"].batch) == ("a", {"bits": 6}, 2)


def test_offline_heads_keep_their_last_assignment() -> None:
    first = plan(fleet(2, {"t1": True}), POLICY, {})
    devices = fleet(2, {"t1": True})
    devices["cam-1"] = DeviceState("cam-1", "head", False)
    second = plan(devices, POLICY, first)
    assert second["cam-1"] == first["cam-1"]
    assert second["t1"].heads == ["cam-0"]


def test_policy_round_trips_through_a_dict() -> None:
    policy = Policy(model="m", overrides={"cam-1": Override(cut="a")})
    assert Policy.from_dict(policy.to_dict()) == policy


def test_heads_and_tails_get_the_policys_calibration_tables() -> None:
    from splitinfer.broker.messages import TableRef
    from splitinfer.coordinator.cost import profile_matches

    tables = [TableRef("m-d-640.npz", "cd" * 32)]
    policy = Policy(model="m", cut="d", codec={"bits": 4, "quality": 60}, tables=tables)
    result = plan(fleet(1, {"t1": True}), policy, {})
    assert result["cam-0"].tables == tables and result["t1"].tables == tables
    assert result["cam-0"].codec == {"bits": 4, "quality": 60}
    profile = {"model": "m", "imgsz": 640, "layer_ms": [1.0], "codec": {"bits": 4, "quality": 60}}
    # a head profile measured without the tables (or with others) does not predict this codec's bytes
    assert not profile_matches(profile, model="m", imgsz=640, codec=result["cam-0"].codec, tables=["cd" * 32])
    assert profile_matches(dict(profile, tables=["cd" * 32]), model="m", imgsz=640, codec=result["cam-0"].codec,
                           tables=["cd" * 32])
