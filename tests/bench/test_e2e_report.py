"""What bench e2e concludes from its rows (pure): the best mode per point, auto's distance to it and why it
missed, whether split beats both local and offload, the break-even payload; and the option parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from splitinfer.bench.e2e import LinkSpec, ModeSpec
from splitinfer.bench.e2e_report import break_even, break_even_bytes, link_ms, summarize, write_csv, write_plot
from splitinfer.errors import BenchError


def row(config: str, p50: float, *, budget: Optional[float] = 0.2, rate: Optional[float] = 5.0, rtt: float = 40.0,
        mode: str = "split", cut: Optional[int] = None, image: Optional[str] = None, predicted: Optional[float] = None,
        nbytes: int = 0) -> Dict[str, Any]:
    return {"budget_cores": budget, "link_mbit": rate, "rtt_ms": rtt if rate is not None else None,
            "config": config, "mode": mode, "cut": cut, "image": image, "p50_ms": p50, "p99_ms": p50 * 1.2,
            "predicted_ms": predicted, "predicted_err_pct": None, "bytes_per_frame": nbytes, "frames": 15}


def point(*, auto: Dict[str, Any], split_a: float = 380.0, jpeg: float = 260.0) -> list:
    return [
        row("local", 650.0, rate=None, mode="local", predicted=610.0),
        row("a", split_a, cut=4, predicted=420.0, nbytes=34_000),
        row("offload:jpeg", jpeg, mode="offload", image="jpeg", predicted=330.0, nbytes=17_000),
        row("offload:webp", 280.0, mode="offload", image="webp", predicted=460.0, nbytes=9_000),
        auto,
    ]


def test_auto_on_the_best_mode_is_within_target_and_split_loses() -> None:
    [s] = summarize(point(auto=row("auto", 250.0, mode="offload", image="jpeg", predicted=330.0)),
                    auto_image="jpeg:90")
    assert (s["best"], s["best_choice"], s["best_p50_ms"]) == ("offload:jpeg", "offload:jpeg", 260.0)
    assert s["p50_ms"]["local"] == 650.0  # local, measured once per budget, counts at this link
    assert (s["auto_choice"], s["auto_vs_best_pct"], s["auto_within_target"], s["auto_miss"]) == (
        "offload:jpeg", -3.8, True, None)
    assert (s["auto_choice_fixed_p50_ms"], s["auto_choice_vs_best_pct"]) == (260.0, 0.0)  # it chose the best mode
    assert (s["best_split"], s["best_offload"], s["best_local"]) == ("a", "offload:jpeg", "local")
    assert s["split_beats_both"] is False and s["split_margin_pct"] == 46.2
    assert s["verdict"] == "offload:jpeg (260 ms) wins; the best split, split a (380 ms), is +46 %"


def test_why_auto_missed() -> None:
    noise = point(auto=row("auto", 300.0, mode="offload", image="jpeg"))
    assert "run-to-run noise" in summarize(noise, auto_image="jpeg:90")[0]["auto_miss"]
    codec = point(auto=row("auto", 320.0, mode="offload", image="jpeg"), jpeg=330.0)  # webp (280) is the best
    assert "only with the fleet's image codec (jpeg:90)" in summarize(codec, auto_image="jpeg:90")[0]["auto_miss"]
    predicted = point(auto=row("auto", 380.0, cut=4), split_a=385.0)  # cut a's own prediction: 420 ms
    [s] = summarize(predicted, auto_image="jpeg:90")
    assert s["auto_choice"] == "split:4" and not s["auto_within_target"]
    assert (s["auto_choice_fixed_p50_ms"], s["auto_choice_vs_best_pct"]) == (385.0, 48.1)  # a poor choice
    assert s["auto_miss"].startswith("auto ran split:4 although offload:jpeg was predicted faster (330 vs 420 ms)")
    wrong = point(auto=row("auto", 380.0, cut=4), split_a=385.0)
    wrong[1]["predicted_ms"] = 300.0  # the model itself favoured cut a: a prediction error
    assert summarize(wrong, auto_image="jpeg:90")[0]["auto_miss"].startswith(
        "prediction error: split:4 was predicted 300 ms (measured 385), offload:jpeg 330 ms (measured 260)")


def test_split_wins_only_beyond_the_noise() -> None:
    [s] = summarize(point(auto=row("auto", 200.0, cut=4), split_a=200.0))
    assert s["split_beats_both"] is True and s["best"] == "a"
    assert s["verdict"] == "split a (200 ms) beats local and offload: -23 % against offload:jpeg"
    [s] = summarize(point(auto=row("auto", 240.0, cut=4), split_a=240.0))
    assert s["split_beats_both"] is False and "no clear winner" in s["verdict"]


def test_break_even_payload() -> None:
    assert link_ms(125_000 / 1.04, 1.0) == pytest.approx(1000.0)
    a = row("a", 380.0, cut=4, nbytes=34_000)  # at 5 Mbit/s its 34 kB take 56.6 ms of its 380
    assert break_even_bytes(a, 400.0, 5.0) == 21_980  # 0.9 × 400 − (380 − 56.6) = 36.6 ms of link for the payload
    assert break_even_bytes(a, 260.0, 5.0) is None  # 0.9 × 260 < 323.4: the rest alone is already too slow
    rows = point(auto=row("auto", 250.0, mode="offload", image="jpeg"))
    [entry] = break_even(rows, summarize(rows))
    assert (entry["config"], entry["cut"], entry["bytes_per_frame"], entry["rival_p50_ms"]) == ("a", 4, 34_000, 260.0)
    assert entry["break_even_bytes"] is None and entry["short_ms"] == 89.4  # 323.4 ms against 0.9 × 260


def test_csv_and_plot_are_written(tmp_path: Path) -> None:
    rows = point(auto=row("auto", 250.0, mode="offload", image="jpeg")) + [
        dict(r, link_mbit=100.0, rtt_ms=10.0) for r in point(auto=row("auto", 120.0, mode="offload", image="jpeg"))
        if r["config"] != "local"]
    summary = summarize(rows)
    assert [(s["link_mbit"], s["rtt_ms"]) for s in summary] == [(5.0, 40.0), (100.0, 10.0)]
    write_csv(tmp_path / "e2e.csv", rows)
    assert (tmp_path / "e2e.csv").read_text().startswith("budget_cores,link_mbit,rtt_ms,config,mode,cut,frames")
    write_plot(tmp_path / "e2e.png", rows, summary, "title")
    assert (tmp_path / "e2e.png").stat().st_size > 1000


def test_links_and_modes_parse() -> None:
    assert LinkSpec.parse("20:40") == LinkSpec(20.0, 40.0) and LinkSpec.parse("5").rtt_ms == 0.0
    assert LinkSpec(2, 40).label == "2 Mbit/s, 40 ms RTT"
    assert ModeSpec.parse("offload:webp") == ModeSpec("offload:webp", "offload", "webp:80")
    assert ModeSpec.parse("offload:jpeg:75").image == "jpeg:75"
    assert ModeSpec.parse("b") == ModeSpec("b", "b") and ModeSpec.parse("12").family == "split"
    assert ModeSpec.parse("auto").family == "auto" and ModeSpec.parse("local").family == "local"
    for bad in ("offload:png", "offload:webp:hi", "whole", "x"):
        with pytest.raises(BenchError):
            ModeSpec.parse(bad)
    for bad in ("fast", "0:10", "5:-1"):
        with pytest.raises(BenchError):
            LinkSpec.parse(bad)
