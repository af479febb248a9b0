"""The collector's logic (pure): which frames count — those in the mode the head was last planned, captured
after that plan arrived, at the end of the run."""

from __future__ import annotations

from typing import Any, Dict, Optional

from splitinfer.bench.e2e_procs import mode_of, planned, steady_run


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
