"""``splitctl bench …``: the codec on your frames and its rate–fidelity study, the whole system on shaped links, and
the smaller benchmarks (splitinfer.bench holds what they run)."""


from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import BenchError, ModelError

from ._console import console, err_console, print_json

app = typer.Typer(help="Measure the codec, and the whole system on shaped links.", no_args_is_help=True)


# every benchmark prints tables (or --json) and writes its JSON under bench/results

Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Where the JSON goes (default: "
                                                                      "bench/results/<name>.json).")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object on stdout instead of a table.")]


def codec_options(
    bits: Optional[int], quality: Optional[int], granularity: Optional[str], clip: Optional[float],
    level: Optional[int], keyframe_interval: Optional[int], extra: List[str],
) -> Dict[str, Any]:
    """Codec settings from flags: ``bits`` selects wire format 1 (whose own flags are granularity, clip and level),
    otherwise wire format 2 at ``quality``; unset ones keep the codec's defaults."""
    v1_flags = [flag for flag, value in (("--granularity", granularity), ("--clip", clip), ("--level", level))
                if value is not None]
    if bits is None and v1_flags:
        raise BenchError(f"{', '.join(v1_flags)}: settings of wire format 1, which --bits selects; wire format 2 "
                         "(the default) has --quality")
    if bits is not None and quality is not None:
        raise BenchError("--quality is wire format 2's knob and --bits selects wire format 1: give one of them")
    options: Dict[str, Any] = {"bits": bits} if bits is not None else {}
    for key, value in (("quality", quality), ("granularity", granularity), ("clip", clip), ("level", level),
                       ("keyframe_interval", keyframe_interval)):
        if value is not None:
            options[key] = value
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--set {item!r}: expected KEY=VALUE, e.g. --set layout=bytes")
        options[key.replace("-", "_")] = _scalar(raw)
    return options


def _scalar(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _calibration(bits: Optional[int], table: Optional[Path], calibrate_on: Optional[str],
                 calibration_frames: Optional[int]) -> Any:
    """How bench codec gets its calibration table (None for wire format 1)."""
    from splitinfer.bench.codec import CALIBRATION_FRAMES, Calibration

    given = [flag for flag, value in (("--table", table), ("--calibrate-on", calibrate_on),
                                      ("--calibration-frames", calibration_frames)) if value is not None]
    if bits is not None:
        if given:
            raise BenchError(f"{', '.join(given)}: wire format 2 options, but --bits selects wire format 1 (no "
                             "calibration table); drop one or the other")
        return None
    if table is not None and calibration_frames is not None:
        raise BenchError("--calibration-frames calibrates here; --table brings a table made elsewhere: give one")
    return Calibration(table=str(table) if table is not None else None, on=calibrate_on,
                       frames=CALIBRATION_FRAMES if calibration_frames is None else calibration_frames)


def _image_kinds(text: str) -> List[str]:
    from splitinfer.bench.rate_fidelity import IMAGE_CODECS

    kinds = [k.strip().lower() for k in text.split(",") if k.strip() and k.strip().lower() != "none"]
    unknown = [k for k in kinds if k not in IMAGE_CODECS]
    if unknown:
        raise BenchError(f"--images {text!r}: unknown {', '.join(unknown)}; expected some of "
                         f"{','.join(IMAGE_CODECS)}, or none")
    return kinds


@app.command("codec")
def bench_codec(
    model: Annotated[str, typer.Argument(help=".pt checkpoint or .yaml config.")],
    source: Annotated[str, typer.Option(help="Image folder, image, video, or synthetic[:N].")] = "synthetic:20",
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    quality: Annotated[Optional[int], typer.Option(min=1, max=100, help="Wire format 2 (the default): quality "
                                                   "1..100, higher is finer (default: the codec's default).")] = None,
    table: Annotated[Optional[Path], typer.Option(help="Calibration table for this model, cut and --imgsz (default: "
                                                       "calibrate here, on frames never measured).")] = None,
    calibrate_on: Annotated[Optional[str], typer.Option(help="Calibrate on these frames (folder, video…), not "
                                                             "on --source.")] = None,
    calibration_frames: Annotated[Optional[int], typer.Option(help="Frames to calibrate on: the first N of "
                                                                   "--calibrate-on, else the first N of --source, "
                                                                   "which are then not measured (default 8).")] = None,
    bits: Annotated[Optional[int], typer.Option(help="Selects wire format 1 instead (affine quantization, bit "
                                                     "planes, zstd; no table): 2..8, or 16/32 for float "
                                                     "passthrough.")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Wire format 1: channel or tensor.")] = None,
    clip: Annotated[Optional[float], typer.Option(help="Wire format 1: fraction of values kept inside the "
                                                       "quantizer range.")] = None,
    level: Annotated[Optional[int], typer.Option(help="Wire format 1: zstd level 1..22.")] = None,
    keyframe_interval: Annotated[Optional[int], typer.Option(help="Temporal delta coding: a keyframe every N "
                                                                  "frames (0: off).")] = None,
    set_: Annotated[Optional[List[str]], typer.Option("--set", help="Other codec setting KEY=VALUE "
                                                                    "(repeatable).")] = None,
    images: Annotated[str, typer.Option(help="Image codecs to compare with, comma-separated, or none.")] = (
        "jpeg,webp,avif"),
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    frames: Annotated[Optional[int], typer.Option(min=1, help="At most this many measured frames.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Rate and fidelity of the codec on your frames: bytes and bits per value, mAP50 and mAP50-95 against the
    unsplit model's own detections, encode/decode/head/tail ms; and the same letterboxed frames as JPEG, WebP and
    AVIF at a sweep of qualities, with what each needs to reach our mAP50-95."""
    from splitinfer.bench.codec import run_codec_bench

    options = codec_options(bits, quality, granularity, clip, level, keyframe_interval, set_ or [])
    calibration = _calibration(bits, table, calibrate_on, calibration_frames)
    kinds = _image_kinds(images)
    with err_console.status("measuring…") as status:
        result = run_codec_bench(
            model, source, cut=cut, imgsz=imgsz, limit=frames, codec_options=options, calibration=calibration,
            images=kinds, device=device, say=status.update,
            on_frame=lambda r: status.update(f"frame {r.frame}: {r.payload_bytes / 1000:.1f} kB, "
                                             f"{r.bits_per_value:.2f} bits/value; image codecs…"),
        )
    _report("codec", result, output, as_json, *_codec_tables(result))


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _codec_tables(r: Dict[str, Any]) -> List[Table]:
    cal = r["calibration"]
    title = (f"{r['model']} cut {r['cut']} (layers {r['live_layers']}), {r['frames']} frames at {r['imgsz']}; "
             f"{r['scheme']}" + (f"; {cal['line']}" if cal else ""))
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("bits per value", _fmt(r["bits_per_value"])),
        ("payload kB / frame (max)", f"{r['payload_bytes_mean'] / 1000:,.1f} ({r['payload_bytes_max'] / 1000:,.1f})"),
        ("mAP50 vs unsplit", _fmt(r["map50"])),
        ("mAP50-95 vs unsplit", _fmt(r["map50_95"])),
        ("reference boxes", str(r["reference_boxes"])),
        ("head ms", _fmt(r["head_ms_mean"], ".1f")),
        ("encode ms", _fmt(r["encode_ms_mean"], ".2f")),
        ("decode ms", _fmt(r["decode_ms_mean"], ".2f")),
        ("tail ms", _fmt(r["tail_ms_mean"], ".1f")),
        ("whole model ms", _fmt(r["whole_ms_mean"], ".1f")),
        ("(encode+decode) / head", f"{100 * r['codec_share_of_head']:.1f} %"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if r["left_out_as_calibration_frames"]:
        table.caption = f"left out: {len(r['left_out_as_calibration_frames'])} frames equal to calibration frames"
    return [table, _image_table(r)]


def _image_table(r: Dict[str, Any]) -> Table:
    image = r["image"]
    notes = [f"{kind}: skipped, {why}" for kind, why in image["skipped"].items()]
    if not image["curve"]:
        return Table(title="no image codec compared", caption="; ".join(notes) or None)
    table = Table(title=f"the same frames as images, at our mAP50-95 ({_fmt(r['map50_95'])}) — ours: "
                        f"{r['payload_bytes_mean'] / 1000:.1f} kB")
    for col in ("format", "kB at our mAP50-95", "cheapest quality reaching it", "its kB", "its mAP50",
                "its mAP50-95"):
        table.add_column(col, justify="left" if col == "format" else "right")
    for kind, m in image["at_our_map50_95"].items():
        p = m["point"] or {}
        kb = {"at most": "≤ ", "interpolated": ""}.get(m["match"], "") + _fmt(m["kB"], ".1f")
        table.add_row(kind.upper(), kb if m["kB"] is not None else f"— ({m['match']})", _fmt(p.get("quality"), "d"),
                      _fmt(p.get("kB"), ".1f"), _fmt(p.get("map50")), _fmt(p.get("map50_95")))
    table.caption = "; ".join([f"{len(image['curve'])} points measured (JSON: image.curve); kB interpolated in log "
                               "kB between the points around our mAP50-95", *notes])
    return table


def _cut_list(text: str) -> List[str]:
    """``abcd``, ``b,d`` or ``10,22``: the cuts to study."""
    parts = [c.strip() for c in text.split(",") if c.strip()]
    if len(parts) == 1 and len(parts[0]) > 1 and set(parts[0]) <= set("abcd"):
        parts = list(parts[0])
    if not parts or not all(p in ("a", "b", "c", "d") or p.isdigit() for p in parts):
        raise BenchError(f"--cuts {text!r}: expected presets a–d (abcd, b,d) or layer numbers (10,22)")
    return parts


@app.command("codec-curve")
def bench_codec_curve(
    model: Annotated[Optional[str], typer.Option(help=".pt checkpoint (default: the realistic YOLOv8s, see "
                                                      "scripts/fetch-weights).")] = None,
    skimage_data: Annotated[Optional[str], typer.Option(help="scikit-image's data folder (default: the installed "
                                                             "package's), e.g. from an unzipped wheel.")] = None,
    cuts: Annotated[str, typer.Option(help="Cuts: abcd, b,d or layer numbers; the clips are measured at cut d.")] = (
        "abcd"),
    qualities: Annotated[Optional[str], typer.Option(help="Qualities, comma-separated (default "
                                                          "30,40,50,60,70,80).")] = None,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    quick: Annotated[bool, typer.Option("--quick", help="Cut d, qualities 40,50,60, two qualities per image codec, "
                                                        "the clips at quality 50 without images.")] = False,
    tables: Annotated[Path, typer.Option(help="Where calibration tables are cached.")] = Path("bench/results/tables"),
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """The codec's rate–fidelity study on fixed frame sets: every cut and quality against JPEG, WebP and AVIF on
    held-out photographs, small objects, a static and a panning clip (intra vs delta), and speed on one thread."""
    from splitinfer.bench.codec_curve import CurveOptions, run_codec_curve, summary_tables

    opts = CurveOptions(model=model, skimage_data=skimage_data, cuts=_cut_list(cuts), imgsz=imgsz, quick=quick,
                        tables=tables)
    if qualities is not None:
        opts.qualities = _ints(qualities, "--qualities")
        if not opts.qualities or not all(1 <= q <= 100 for q in opts.qualities):
            raise BenchError(f"--qualities {qualities!r}: expected qualities 1..100, e.g. 40,50,60")
    with err_console.status("starting…") as status:

        def log(line: str) -> None:
            status.update(line)
            err_console.print(line)

        result = run_codec_curve(opts, log)
    _report("codec_curve", result, output, as_json, *(_text_table(*t) for t in summary_tables(result)))


def _text_table(title: str, columns: List[str], rows: List[List[str]]) -> Table:
    table = Table(title=title)
    for k, col in enumerate(columns):
        table.add_column(col, justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _budgets(text: str) -> List[Optional[float]]:
    out: List[Optional[float]] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            out.append(None if item in ("none", "full") else float(item))
        except ValueError:
            raise BenchError(f"--budgets {text!r}: expected cores per head separated by commas, e.g. 0.2,1 "
                             "(none: unconstrained)") from None
    return out


QUICK_LINKS, QUICK_BUDGETS, QUICK_MODES, QUICK_FRAMES = "5:20,100:5", "0.2", "local,a,offload:jpeg,auto", 6


@app.command("e2e")
def bench_e2e(
    model: Annotated[Optional[str], typer.Option(help=".pt checkpoint or .yaml config (default: the cached YOLOv8s "
                                                      "checkpoint, see scripts/fetch-weights).")] = None,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 320,
    links: Annotated[str, typer.Option(help="Links, MBIT[:RTT_MS] comma-separated (tbf rate; delay by a relay).")
                     ] = "2:40,5:40,20:20,100:10",
    budgets: Annotated[str, typer.Option(help="Head CPU budgets in cores, comma-separated (a cgroup quota; none: "
                                              "unconstrained).")] = "0.2,1",
    modes: Annotated[str, typer.Option(help="Configurations, comma-separated: local, a|b|c|d|N (split), "
                                            "offload:jpeg|webp|avif[:QUALITY], auto.")
                     ] = "local,a,b,c,d,offload:jpeg,offload:webp,offload:avif,auto",
    frames: Annotated[int, typer.Option(min=1, help="Measured frames per configuration (after the warm-up).")] = 15,
    quality: Annotated[int, typer.Option(min=1, max=100, help="The calibrated codec's quality at the split "
                                                               "cuts (as the coordinator's --quality).")] = 50,
    keyframe_interval: Annotated[int, typer.Option(min=0, help="Delta frames between keyframes (0: every frame "
                                                               "a keyframe).")] = 10,
    calibrate: Annotated[bool, typer.Option(help="Calibrate the codec at the split cuts on the clip's first 8 "
                                                 "frames; without: version 1 at --bits everywhere.")] = True,
    bits: Annotated[int, typer.Option(help="Codec bit width (version 1) where no calibration table covers a cut."
                                      )] = 4,
    image: Annotated[str, typer.Option(help="The fleet's image codec, FORMAT:QUALITY: what auto may offload with.")
                     ] = "jpeg:90",
    quick: Annotated[bool, typer.Option("--quick", help="Links 5:20 and 100:5, budget 0.2, modes local, a, "
                                                        "offload:jpeg and auto, 6 frames: about two minutes.")
                     ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where e2e.json, e2e.csv and e2e.png go.")] = Path(
        "bench/results"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Every mode — local, split at each cut, offload with each image codec, auto — with the head on a CPU budget
    (a cgroup) and on links shaped in two network namespaces (needs root and iproute2): end-to-end latency
    p50/p99, sustainable fps, bytes per frame and the cost model's prediction, which mode wins at each (link,
    budget), and whether auto is within 10 % of the best."""
    from splitinfer.bench.e2e import E2EOptions, LinkSpec, run_e2e

    if model is None:
        from splitinfer.splitting.weights import realistic_checkpoint

        try:
            model = str(realistic_checkpoint(fetch=False))
        except ModelError:
            model = "yolo11n.yaml"
            err_console.print("no cached YOLOv8s checkpoint: using yolo11n.yaml with random weights (timings and "
                              "sizes are real)")
    if quick:
        links, budgets, modes, frames = QUICK_LINKS, QUICK_BUDGETS, QUICK_MODES, QUICK_FRAMES
    opts = E2EOptions(model=model, imgsz=imgsz, links=[LinkSpec.parse(x) for x in links.split(",") if x.strip()],
                      budgets=_budgets(budgets), modes=[m.strip() for m in modes.split(",") if m.strip()],
                      frames=frames, bits=bits, quality=quality, keyframe_interval=keyframe_interval,
                      calibrate=calibrate, image=image, out=out)
    with err_console.status("starting…") as status:

        def say(line: str) -> None:
            status.update(line.strip())
            err_console.print(line, highlight=False)

        result = run_e2e(opts, say=say)
    if as_json:
        print_json(result)
        return
    _print_e2e(result)


def _print_e2e(result: Dict[str, Any]) -> None:
    from splitinfer.bench.e2e_report import family

    configs = list(dict.fromkeys(r["config"] for r in result["rows"] if family(r["config"]) != "auto"))
    for budget in dict.fromkeys(s["budget_cores"] for s in result["summary"]):
        where = "unconstrained head" if budget is None else f"head on {budget:g} core"
        table = Table(title=f"{Path(result['model']).name} at {result['imgsz']}, {where}: p50 ms, capture → "
                            "detections (best in bold)", caption=f"link: Mbit/s / RTT ms; offload codecs by name; "
                                                                 f"auto offloads with {result['image']}")
        table.add_column("link")
        for name in (*configs, "auto", "vs best"):
            table.add_column(name.replace("offload:", ""), justify="right")
        for s in (s for s in result["summary"] if s["budget_cores"] == budget):
            auto = f"{_fmt(s['auto_p50_ms'], '.0f')} {s['auto_choice'].replace('offload:', '')}" if (
                s["auto_choice"]) else "—"
            table.add_row(f"{s['link_mbit']:g}/{s['rtt_ms']:g}", *[_p50_cell(s, c) for c in configs], auto,
                          f"{s['auto_vs_best_pct']:+.0f} %" if s["auto_vs_best_pct"] is not None else "—")
        console.print(table)
    for s in result["summary"]:
        where = "unconstrained" if s["budget_cores"] is None else f"{s['budget_cores']:g} core"
        choice = (f"; auto ran {s['auto_choice']} ({s['auto_vs_best_pct']:+.0f} % vs the best; that mode's own run "
                  f"{s['auto_choice_vs_best_pct']:+.0f} %)" if s.get("auto_choice_vs_best_pct") is not None else "")
        miss = f"; auto missed: {s['auto_miss']}" if s.get("auto_miss") else ""
        console.print(f"{where}, {s['link_mbit']:g} Mbit/s: {s['verdict']}{choice}{miss}", highlight=False)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote {result['options']['out']}/e2e.json, e2e.csv, e2e.png in {result['wall_s']} s")


def _p50_cell(summary: Dict[str, Any], config: str) -> str:
    value = summary["p50_ms"].get(config)
    if value is None:
        return "—"
    return f"[bold]{value:.0f}[/bold]" if config == summary["best"] else f"{value:.0f}"


# ---- the smaller benchmarks: each prints a table (or --json) and writes its JSON under bench/results ----------


def _report(name: str, result: Dict[str, Any], output: Optional[Path], as_json: bool, *tables: Table) -> None:
    """Write ``result`` as JSON (to ``output`` or bench/results/<name>.json) and print it or ``tables``."""
    import json

    path = output or Path("bench/results") / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    if as_json:
        print_json(result)
        return
    for table in tables:
        console.print(table)
    err_console.print(f"wrote {path}")


def _ints(text: str, what: str) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"{what} {text!r}: expected integers separated by commas, e.g. 2,4,8") from None


@app.command("codec-speed")
def bench_codec_speed(
    model: Annotated[str, typer.Option(help=".pt checkpoint or .yaml config.")] = "yolo11n.yaml",
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    bits: Annotated[str, typer.Option(help="Bit widths to time, comma-separated.")] = "2,3,4,8",
    threads: Annotated[int, typer.Option(min=1, help="torch threads (1: a fair, quiet measurement).")] = 1,
    repeat: Annotated[int, typer.Option(min=1, help="Calls per measurement; the median counts.")] = 15,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over all measurements; the quietest counts.")] = 5,
    seed_values: Annotated[int, typer.Option(help="Time the seed codec on this many values (0: all).")] = 0,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """Encode and decode time of the codec at each --bits, against the head's compute and the seed codec."""
    from splitinfer.bench.codec_speed import run_codec_speed

    with err_console.status("timing…"):
        r = run_codec_speed(model, cut=cut, imgsz=imgsz, bits=_ints(bits, "--bits"), threads=threads,
                            repeat=repeat, rounds=rounds, seed_values=seed_values)
    table = Table(title=f"{r['model']} cut {r['cut']} (layer {r['layer']}): {r['values']:,} values; head "
                        f"{r['head_ms']:.1f} ms on {r['threads']} thread(s); codec: {r['kernels']}")
    for col in ("codec", "bits/value", "encode ms", "decode ms", "% of head", "× seed"):
        table.add_column(col, justify="left" if col == "codec" else "right")
    for row in r["rows"]:
        table.add_row(row["codec"], f"{row['bits_per_value']:.3f}", f"{row['encode_ms']:.2f}",
                      f"{row['decode_ms']:.2f}", f"{100 * row['share_of_head']:.1f}", f"{row['speedup_vs_seed']:.1f}")
    table.caption = f"seed codec: {r['seed_note']}; % of head = (encode + decode) / head compute"
    _report("codec_speed", r, output, as_json, table)


@app.command("overhead")
def bench_overhead(
    model: Annotated[Optional[str], typer.Option(help="Default: the cached realistic YOLOv8s checkpoint.")] = None,
    source: Annotated[str, typer.Option(help="Frames to run.")] = "synthetic",
    frames: Annotated[int, typer.Option(min=6, help="Frames (the first 5 are warm-up).")] = 60,
    fps: Annotated[float, typer.Option(help="Pace the head below what the tail sustains.")] = 2.0,
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    bits: Annotated[int, typer.Option(help="Codec bit width.")] = 4,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """Split overhead: encode + transit + decode per frame against unsplit inference, measured in one run."""
    from splitinfer.bench.overhead import run_overhead

    with err_console.status("running the split system, then the unsplit model…"):
        r = run_overhead(model, source=source, frames=frames, fps=fps, cut=cut, bits=bits, imgsz=imgsz)
    table = Table(title=f"split overhead: {Path(r['model']).name} cut {r['cut_spec']} (layer {r['cut']}), "
                        f"{r['bits']}-bit, {r['frames']} frames at {r['fps_offered']:g} fps")
    for col in ("encode ms", "transit ms", "decode ms", "overhead p50 ms", "unsplit p50 ms", "share"):
        table.add_column(col, justify="right")
    table.add_row(f"{r['encode_ms_mean']:.1f}", f"{r['transit_ms_mean']:.1f}", f"{r['decode_ms_mean']:.1f}",
                  f"{r['overhead_ms_p50']:.1f}", f"{r['unsplit_ms_p50']:.1f}", f"{100 * r['overhead_share_p50']:.1f} %")
    _report("overhead", r, output, as_json, table)


@app.command("soak")
def bench_soak(
    model: Annotated[str, typer.Option(help=".pt checkpoint or .yaml config.")] = "yolo11n.yaml",
    frames: Annotated[int, typer.Option(min=200, help="Frames through the system.")] = 1000,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 320,
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "a",
    bits: Annotated[int, typer.Option(help="Codec bit width.")] = 4,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """Memory of the head and tail over a long run with a tail slower than the head (RSS flat within ±10 %)."""
    from splitinfer.bench.soak import run_soak

    with err_console.status(f"running {frames} frames…"):
        r = run_soak(model, frames=frames, imgsz=imgsz, cut=cut, bits=bits)
    table = Table(title=f"RSS over {r['frames_captured']} frames ({r['frames_detected']} detected, {r['dropped']} "
                        f"dropped and counted)")
    for col in ("process", "start MB", "end MB", "max MB", "change"):
        table.add_column(col, justify="left" if col == "process" else "right")
    for name, v in r["rss_mb"].items():
        table.add_row(name, f"{v['start']:.1f}", f"{v['end']:.1f}", f"{v['max']:.1f}", f"{100 * v['change']:+.1f} %")
    _report("soak", r, output, as_json, table)


@app.command("broker")
def bench_broker(
    kinds: Annotated[str, typer.Option(help="Local brokers to measure, comma-separated.")] = "mosquitto,embedded",
    n: Annotated[int, typer.Option(min=3, help="Round trips per payload size.")] = 30,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """Publish → receive latency through MqttClient per payload size, on Mosquitto and the embedded broker."""
    from splitinfer.bench.broker_latency import run_broker_latency

    with err_console.status("measuring…"):
        r = run_broker_latency([k for k in kinds.split(",") if k], n=n)
    table = Table(title=f"publish → receive on loopback, {r['n']} round trips per size")
    for col in ("broker", "bytes", "p50 ms", "p90 ms"):
        table.add_column(col, justify="left" if col == "broker" else "right")
    for row in r["rows"]:
        table.add_row(row["broker"], f"{row['bytes']:,}", f"{row['p50_ms']:.2f}", f"{row['p90_ms']:.2f}")
    _report("broker_latency", r, output, as_json, table)


@app.command("threads")
def bench_threads(
    model: Annotated[str, typer.Option(help=".pt checkpoint or .yaml config.")] = "yolo11n.yaml",
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    threads: Annotated[str, typer.Option(help="torch thread counts, comma-separated (default: 1 and every "
                                              "core).")] = "",
    repeat: Annotated[int, typer.Option(min=1, help="Calls per measurement; the median counts.")] = 10,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over all counts; the quietest counts.")] = 3,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """Head and tail compute on one torch thread against every core: what `splitctl node --threads 0` buys."""
    from splitinfer.bench.threads import run_threads_bench

    counts = _ints(threads, "--threads") if threads else None
    if counts is not None and min(counts, default=0) < 1:
        raise BenchError(f"--threads {threads!r}: counts must be ≥ 1")
    with err_console.status("timing…"):
        r = run_threads_bench(model, cut=cut, imgsz=imgsz, counts=counts, repeat=repeat, rounds=rounds)
    table = Table(title=f"{r['model']} at {r['imgsz']}, cut {r['cut']} (layer {r['layer']}), {r['cores']} cores, "
                        f"torch {r['torch']}")
    for col in ("threads", "head ms", "tail ms", "head ×", "tail ×"):
        table.add_column(col, justify="right")
    for row in r["rows"]:
        table.add_row(str(row["threads"]), f"{row['head_ms']:.1f}", f"{row['tail_ms']:.1f}",
                      f"{row['head_speedup']:.2f}", f"{row['tail_speedup']:.2f}")
    _report("threads", r, output, as_json, table)


@app.command("frames")
def bench_frames(
    out: Annotated[Path, typer.Option("--out", help="Folder for the frames.")] = Path("bench/frames"),
) -> None:
    """Write the codec benchmark's 24 frames (bus.jpg and zidane.jpg with flips, crops, rescales, exposure, blur)."""
    from splitinfer.bench.frames import write_frames

    written = write_frames(out)
    err_console.print(f"wrote {len(written)} frames")
    print(out)


@app.command("startup")
def bench_startup(
    model: Annotated[str, typer.Option(help=".pt checkpoint or .yaml config.")] = "yolo11n.yaml",
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    rounds: Annotated[int, typer.Option(min=2, help="Rounds; the first starts with an empty profile cache.")] = 3,
    threads: Annotated[int, typer.Option(min=0, help="torch threads per node (0: all cores).")] = 0,
    output: Output = None,
    as_json: AsJson = False,
) -> None:
    """How long a tail takes to serve and a head to get its first frame's detections, cold and warm cache."""
    from splitinfer.bench.startup import run_startup

    with err_console.status("starting nodes…"):
        r = run_startup(model, imgsz=imgsz, rounds=rounds, threads=threads)
    table = Table(title=f"node startup: {r['model']} at {r['imgsz']} (seconds from process start)")
    for col in ("round", "profile cache", "tail serving", "head's first detections"):
        table.add_column(col, justify="right")
    for row in r["rounds"]:
        table.add_row(str(row["round"]), row["cache"], f"{row['tail_ready_s']:.2f}", f"{row['head_first_frame_s']:.2f}")
    verdict = "met" if r["target_met"] else "not met"
    table.caption = f"target: a warm head's first frame within {r['target_s']:g} s — {verdict}"
    _report("startup", r, output, as_json, table)
