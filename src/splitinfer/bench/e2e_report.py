"""What ``bench e2e`` makes of its rows: the per-point summary and verdict (pure), the CSV and the plot.

A *point* is one (head budget, link). At every point each measured configuration — ``local``, a split cut
(``a``…``d`` or a layer), ``offload:<image codec>``, ``auto`` — has one row; local sends nothing over the link,
so it is measured once per budget and counts at every link of that budget.

Per point the summary names the best of all measured configurations, auto's choice and its distance to that
best (the target: within ``AUTO_TOLERANCE``), why auto missed where it did, whether split beats both local and
offload by more than the noise (``NOISE``), and for every split cut the *break-even payload*: the most bytes per
frame that cut may send for split to win there by that margin, everything else as measured.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "AUTO_TOLERANCE", "CSV_COLUMNS", "NOISE", "break_even_bytes", "family", "summarize", "verdict", "write_csv",
    "write_plot",
]

NOISE = 0.10  # run-to-run differences on a shared 2-core machine; a "win" must be larger than this
AUTO_TOLERANCE = 0.10  # auto's p50 within 10 % of the best measured configuration
WIRE_OVERHEAD = 1.04  # TCP/IP framing, as in the cost model
OFFLOAD_COLORS = {"jpeg": "tab:blue", "webp": "tab:orange", "avif": "tab:green"}

CSV_COLUMNS = ("budget_cores", "link_mbit", "rtt_ms", "config", "mode", "cut", "frames", "p50_ms", "p99_ms",
               "fps", "paced_fps", "bytes_per_frame", "predicted_ms", "predicted_err_pct", "predicted_profile_ms",
               "predicted_profile_err_pct", "reported_p50_ms", "other_mode_frames", "reason")


def family(config: str) -> str:
    """``local``, ``offload``, ``auto`` or ``split`` (a preset or a layer number)."""
    if config in ("local", "auto"):
        return config
    return "offload" if config.startswith("offload") else "split"


def choice_of(row: Dict[str, Any]) -> str:
    """What a row ran, in the words of an assignment: ``split:4``, ``local``, ``offload:jpeg``."""
    if row.get("mode") == "split":
        return f"split:{row.get('cut')}"
    if row.get("mode") == "offload":
        return f"offload:{row.get('image') or '?'}"
    return str(row.get("mode"))


def link_ms(nbytes: float, rate_mbit: float) -> float:
    """Milliseconds to serialise ``nbytes`` on the link (its delay not included)."""
    return nbytes * WIRE_OVERHEAD * 8.0 / (rate_mbit * 1e6) * 1000.0


def _spare_ms(row: Dict[str, Any], baseline_ms: float, rate_mbit: float) -> Optional[float]:
    """What this split row's payload may take of the link for split to beat ``baseline_ms`` by NOISE, the rest of
    its latency (head, delay, tail) as measured: negative when even an empty payload would lose."""
    if not row.get("p50_ms"):
        return None
    rest = row["p50_ms"] - link_ms(row.get("bytes_per_frame") or 0, rate_mbit)
    return (1.0 - NOISE) * baseline_ms - rest


def break_even_bytes(row: Dict[str, Any], baseline_ms: float, rate_mbit: float) -> Optional[int]:
    """The most bytes per frame this split row could send and still beat ``baseline_ms`` by NOISE, the rest of its
    latency (head, delay, tail) as measured; None when even an empty payload would not."""
    spare = _spare_ms(row, baseline_ms, rate_mbit)
    if spare is None or spare <= 0:
        return None
    return int(spare / 1000.0 * rate_mbit * 1e6 / 8.0 / WIRE_OVERHEAD)


def _pct(a: float, b: float) -> float:
    return round(100.0 * (a - b) / b, 1)


def _points(rows: Sequence[Dict[str, Any]]) -> List[Tuple[Optional[float], float, float]]:
    seen = {(r.get("budget_cores"), r["link_mbit"], r.get("rtt_ms") or 0.0) for r in rows
            if r.get("link_mbit") is not None}
    return sorted(seen, key=lambda p: (p[0] is None, p[0] or 0.0, p[1], p[2]))


def _at(rows: Sequence[Dict[str, Any]], budget: Optional[float], rate: float, rtt: float) -> List[Dict[str, Any]]:
    """The rows of one point, local's (measured once per budget) included."""
    here = [r for r in rows if r.get("budget_cores") == budget and r.get("p50_ms")
            and ((r.get("link_mbit"), r.get("rtt_ms") or 0.0) == (rate, rtt) or r.get("link_mbit") is None)]
    return here


def summarize(rows: Sequence[Dict[str, Any]], *, auto_image: str = "") -> List[Dict[str, Any]]:
    """One entry per (budget, link): see the module docstring. ``auto_image``: the image codec auto may offload
    with (the fleet's one), to explain a miss against another codec's offload."""
    out = []
    for budget, rate, rtt in _points(rows):
        here = _at(rows, budget, rate, rtt)
        if not here:
            continue
        p50 = {r["config"]: r["p50_ms"] for r in here}
        measured = [r for r in here if family(r["config"]) != "auto"]
        best = min(measured or here, key=lambda r: r["p50_ms"])
        by = {f: min((r for r in here if family(r["config"]) == f), key=lambda r: r["p50_ms"], default=None)
              for f in ("split", "offload", "local", "auto")}
        entry: Dict[str, Any] = {
            "budget_cores": budget, "link_mbit": rate, "rtt_ms": rtt, "p50_ms": p50,
            "best": best["config"], "best_choice": choice_of(best), "best_p50_ms": best["p50_ms"],
        }
        for f in ("split", "offload", "local"):
            r = by[f]
            entry[f"best_{f}"] = r["config"] if r else None
            entry[f"best_{f}_p50_ms"] = r["p50_ms"] if r else None
        entry.update(_auto(by["auto"], best, here, auto_image))
        entry.update(_split_verdict(by["split"], by["local"], by["offload"], rate))
        out.append(entry)
    return out


def _auto(auto: Optional[Dict[str, Any]], best: Dict[str, Any], here: Sequence[Dict[str, Any]],
          auto_image: str) -> Dict[str, Any]:
    if auto is None:
        return {"auto_choice": None, "auto_p50_ms": None, "auto_vs_best_pct": None, "auto_within_target": None,
                "auto_predicted_ms": None, "auto_predicted_err_pct": None, "auto_choice_fixed_p50_ms": None,
                "auto_choice_vs_best_pct": None, "auto_miss": None}
    distance = _pct(auto["p50_ms"], best["p50_ms"])
    within = auto["p50_ms"] <= (1.0 + AUTO_TOLERANCE) * best["p50_ms"]
    # the same mode's fixed row: how good the choice was, free of the drift between auto's run and the others
    same = next((r for r in here if family(r["config"]) != "auto" and choice_of(r) == choice_of(auto)), None)
    return {
        "auto_choice": choice_of(auto), "auto_p50_ms": auto["p50_ms"], "auto_vs_best_pct": distance,
        "auto_within_target": within, "auto_predicted_ms": auto.get("predicted_ms"),
        "auto_predicted_err_pct": auto.get("predicted_err_pct"),
        "auto_choice_fixed_p50_ms": same["p50_ms"] if same else None,
        "auto_choice_vs_best_pct": _pct(same["p50_ms"], best["p50_ms"]) if same else None,
        "auto_miss": None if within else _why_missed(auto, best, here, auto_image),
    }


def _why_missed(auto: Dict[str, Any], best: Dict[str, Any], here: Sequence[Dict[str, Any]], auto_image: str) -> str:
    """Noise (the same mode measured twice), the image codec auto may not use, a prediction error (the fixed
    rows' own predictions favour auto's choice), or a choice its predictions do not support."""
    mine, theirs = choice_of(auto), choice_of(best)
    if mine == theirs:
        return (f"the best mode ({mine}), measured in two runs: {auto['p50_ms']:.0f} against {best['p50_ms']:.0f} ms "
                "is run-to-run noise")
    if family(best["config"]) == "offload" and auto_image and best.get("image") != auto_image.split(":")[0]:
        return (f"the best is offload with {best.get('image')}; auto may offload only with the fleet's image codec "
                f"({auto_image})")
    same = next((r for r in here if family(r["config"]) != "auto" and choice_of(r) == mine), None)
    if same is not None and same.get("predicted_ms") and best.get("predicted_ms"):
        if same["predicted_ms"] <= best["predicted_ms"]:
            return (f"prediction error: {mine} was predicted {same['predicted_ms']:.0f} ms (measured "
                    f"{same['p50_ms']:.0f}), {theirs} {best['predicted_ms']:.0f} ms (measured {best['p50_ms']:.0f})")
        return (f"auto ran {mine} although {theirs} was predicted faster ({best['predicted_ms']:.0f} vs "
                f"{same['predicted_ms']:.0f} ms): it planned before calibration, or kept its mode within the "
                "hysteresis")
    return f"auto ran {mine}, the best is {theirs}; no prediction for one of them to compare"


def _split_verdict(split: Optional[Dict[str, Any]], local: Optional[Dict[str, Any]],
                   offload: Optional[Dict[str, Any]], rate: float) -> Dict[str, Any]:
    baselines = [r["p50_ms"] for r in (local, offload) if r is not None]
    if split is None or not baselines:
        return {"split_beats_both": None, "split_margin_pct": None,
                "verdict": "not measured: needs split and at least one of local and offload"}
    baseline = min(baselines)
    beats = split["p50_ms"] < (1.0 - NOISE) * baseline
    return {"split_beats_both": beats, "split_margin_pct": _pct(split["p50_ms"], baseline),
            "verdict": verdict(split, local, offload)}


def verdict(split: Dict[str, Any], local: Optional[Dict[str, Any]], offload: Optional[Dict[str, Any]]) -> str:
    """One sentence: does the best split beat both local and the best offload by more than the noise?"""
    rivals = [r for r in (local, offload) if r is not None]
    rival = min(rivals, key=lambda r: r["p50_ms"])
    margin = _pct(split["p50_ms"], rival["p50_ms"])
    name = f"split {split['config']} ({split['p50_ms']:.0f} ms)"
    if split["p50_ms"] < (1.0 - NOISE) * rival["p50_ms"]:
        return f"{name} beats local and offload: {margin:+.0f} % against {rival['config']}"
    if split["p50_ms"] <= (1.0 + NOISE) * rival["p50_ms"]:
        return f"{name} and {rival['config']} are within {NOISE:.0%} (the noise here): no clear winner"
    return f"{rival['config']} ({rival['p50_ms']:.0f} ms) wins; the best split, {name}, is {margin:+.0f} %"


def break_even(rows: Sequence[Dict[str, Any]], summary: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per point and split cut: today's bytes per frame and the break-even payload against the better of local
    and the best offload; where none exists, ``short_ms``: how much faster head and tail would have to be."""
    out = []
    for s in summary:
        rivals = [v for v in (s.get("best_local_p50_ms"), s.get("best_offload_p50_ms")) if v]
        if not rivals:
            continue
        for r in _at(rows, s["budget_cores"], s["link_mbit"], s["rtt_ms"]):
            if family(r["config"]) == "split":
                spare = _spare_ms(r, min(rivals), s["link_mbit"])
                out.append({"budget_cores": s["budget_cores"], "link_mbit": s["link_mbit"], "rtt_ms": s["rtt_ms"],
                            "config": r["config"], "cut": r.get("cut"), "bytes_per_frame": r.get("bytes_per_frame"),
                            "rival_p50_ms": min(rivals),
                            "break_even_bytes": break_even_bytes(r, min(rivals), s["link_mbit"]),
                            # at an empty payload, how much too slow the rest (head, delay, tail) still is
                            "short_ms": round(-spare, 1) if spare is not None and spare <= 0 else None})
    return out


def write_csv(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([r.get(c) for c in CSV_COLUMNS])


def _short(choice: str) -> str:
    """``split:4`` → ``cut 4``, ``offload:jpeg`` → ``jpeg``: auto's choice written on the plot."""
    return f"cut {choice[6:]}" if choice.startswith("split:") else choice.replace("offload:", "")


def _budget_label(budget: Optional[float]) -> str:
    return "head unconstrained" if budget is None else f"head budget {budget:g} core"


def write_plot(path: Path, rows: Sequence[Dict[str, Any]], summary: Sequence[Dict[str, Any]], title: str) -> None:
    """One panel per head budget: p50 latency against link rate (log-log), a line per configuration, local
    flat (it does not use the link), auto thick with its choice written at each point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(dict.fromkeys(s["budget_cores"] for s in summary))
    if not budgets:
        return
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets) + 2.2, 5.2), sharey=True, squeeze=False)
    configs = list(dict.fromkeys(r["config"] for r in rows))
    splits = [c for c in configs if family(c) == "split"]
    cmap = plt.get_cmap("viridis")
    for ax, budget in zip(axes[0], budgets):
        points = [s for s in summary if s["budget_cores"] == budget]
        rates = [s["link_mbit"] for s in points]
        for config in configs:
            ys = [s["p50_ms"].get(config) for s in points]
            xs = [x for x, y in zip(rates, ys) if y]
            ys = [y for y in ys if y]
            if not ys:
                continue
            kind = family(config)
            if kind == "auto":
                ax.plot(xs, ys, color="crimson", linewidth=3.2, marker="o", markersize=8, label="auto", zorder=5)
                for s in points:
                    if s.get("auto_p50_ms"):
                        ax.annotate(_short(s["auto_choice"]), (s["link_mbit"], s["auto_p50_ms"]),
                                    textcoords="offset points",
                                    xytext=(4, 7), fontsize=7, color="crimson")
            elif kind == "local":
                ax.plot(xs, ys, color="black", linestyle=":", linewidth=1.8, marker="_", markersize=12,
                        label="local (whole model on head)")
            elif kind == "offload":
                ax.plot(xs, ys, color=OFFLOAD_COLORS.get(config.split(":")[1], "gray"), linestyle="--", marker="s",
                        markersize=4, linewidth=1.4, label=config)
            else:
                shade = cmap(0.1 + 0.8 * splits.index(config) / max(1, len(splits) - 1))
                ax.plot(xs, ys, color=shade, marker="^", markersize=4, linewidth=1.4, label=f"split {config}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(rates)
        ax.set_xticklabels([f"{s['link_mbit']:g}\n{s['rtt_ms']:g} ms" for s in points], fontsize=8)
        ax.set_xlabel("link: Mbit/s and RTT")
        ax.set_title(_budget_label(budget), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    values = [v for s in summary for v in s["p50_ms"].values() if v]
    ticks = [t for t in (10, 20, 50, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 5000, 10000, 20000)
             if min(values) / 1.5 <= t <= max(values) * 1.5]
    for ax in axes[0]:
        ax.minorticks_off()
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t:g}" for t in ticks])
    axes[0][0].set_ylabel("end-to-end latency p50, ms (capture → detections)")
    labelled: Dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    axes[0][-1].legend(list(labelled.values()), list(labelled), fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
