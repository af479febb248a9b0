"""The collector's logic (pure): which frames count — those in the mode the head was last planned, captured
after that plan arrived, at the end of the run."""

from __future__ import annotations

from typing import Any, Dict, Optional

from splitinfer.bench.e2e_procs import mode_of, one_clock, planned, steady_run


def rec(ts: float, mode: str = "split", cut: Optional[int] = 4) -> Dict[str, Any]:
    return {"timestamp": ts, "mode": mode, "cut": cut}


def assign(received: float, mode: Optional[str], cut: int = 0) -> Dict[str, Any]:
    prediction = None if mode is None else {"mode": mode, "cut": cut}
    return {"received": received, "predicted_ms": None if mode is None else 100.0, "prediction": prediction}


def test_the_plan_is_the_last_assignment_with_a_prediction() -> None:
    assert planned([]) == (None, float("inf"))
    assert planned([assign(1.0, None)]) == (None, float("inf"))  # the fallback cut, before the profiles
    assignments = [assign(1.0, None), assign(2.0, "split", 4), assign(3.0, "split", 4), assign(5.0, "offload")]
    assert planned(assignments[:3]) == (("split", 4), 2.0)  # a re-plan to the same cut keeps its start
    assert planned(assignments) == (("offload", None), 5.0)
    assert mode_of({"mode": "local", "cut": None}) == ("local", None) and mode_of({"cut": 4}) == ("split", 4)


def test_only_the_final_run_in_the_planned_mode_counts() -> None:
    records = [rec(1.0, cut=10), rec(2.0), rec(3.0, "local", None), rec(4.0), rec(5.0), rec(6.0)]
    assert [r["timestamp"] for r in steady_run(records, 0.0)] == [4.0, 5.0, 6.0]
    assert [r["timestamp"] for r in steady_run(records, 5.0)] == [5.0, 6.0]
    assert steady_run(records, 0.0, ("split", 10)) == []  # the head no longer runs what was planned
    assert [r["timestamp"] for r in steady_run(records, 2.0, ("split", 4))] == [4.0, 5.0, 6.0]


def test_latencies_are_read_off_the_one_clock() -> None:
    # a 105 kB frame on 2 Mbit/s: the head's offset estimate took in half its transfer, so the node reported 200 ms
    # less than the one clock of this machine says
    record = {"timestamp": 100.0, "clock": {"sent": 100.1, "received": 100.55, "published": 100.7},
              "timings": {"e2e_ms": 500.0, "transit_ms": 250.0, "tail_ms": 100.0}}
    timings = one_clock(record)
    assert timings["e2e_ms"] == 700.0 and timings["transit_ms"] == 450.0 and timings["tail_ms"] == 100.0
    assert (timings["reported_e2e_ms"], timings["reported_transit_ms"]) == (500.0, 250.0)
    local = {"timestamp": 100.0, "mode": "local", "timings": {"e2e_ms": 120.0}}  # the head's own clock
    assert one_clock(local) == {"e2e_ms": 120.0}
    assert one_clock({"timestamp": 1.0, "clock": {"sent": "x"}, "timings": {"e2e_ms": 5.0}}) == {"e2e_ms": 5.0}
