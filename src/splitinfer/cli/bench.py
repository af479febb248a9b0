"""``splitctl bench codec``: payload size, speed and fidelity of the codec on real frames."""


from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import SplitInferError

from ._console import console, err_console, print_json

app = typer.Typer(help="Measure the codec, and the whole system on shaped links.", no_args_is_help=True)


def codec_options(
    bits: int, granularity: Optional[str], clip: Optional[float], level: Optional[int],
    keyframe_interval: Optional[int], extra: List[str],
) -> Dict[str, Any]:
    """Codec settings from flags; unset ones keep the codec's best defaults for ``bits``."""
    options: Dict[str, Any] = {"bits": bits}
    for key, value in (("granularity", granularity), ("clip", clip), ("level", level),
                       ("keyframe_interval", keyframe_interval)):
        if value is not None:
            options[key] = value
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SplitInferError(f"--set {item!r}: expected KEY=VALUE, e.g. --set layout=bytes")
        options[key.replace("-", "_")] = _scalar(raw)
    return options


def _scalar(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@app.command("codec")
def bench_codec(
    model: Annotated[str, typer.Argument(help=".pt checkpoint or .yaml config.")],
    source: Annotated[str, typer.Option(help="Image folder, image, video, or synthetic[:N].")] = "synthetic:20",
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    bits: Annotated[int, typer.Option(help="2..8, or 16/32 for float passthrough.")] = 4,
    granularity: Annotated[Optional[str], typer.Option(help="channel or tensor (default: best for --bits).")] = None,
    clip: Annotated[Optional[float], typer.Option(help="Fraction of values kept inside the quantizer range.")] = None,
    level: Annotated[Optional[int], typer.Option(help="zstd level 1..22.")] = None,
    keyframe_interval: Annotated[Optional[int], typer.Option(help="Temporal delta coding: a keyframe every N "
                                                                  "frames (0: off).")] = None,
    set_: Annotated[Optional[List[str]], typer.Option("--set", help="Other codec setting KEY=VALUE "
                                                                    "(repeatable).")] = None,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    frames: Annotated[Optional[int], typer.Option(help="At most this many frames.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the JSON here.")] = None,
) -> None:
    """Per frame and on average: payload bytes, bits per value, JPEG q90 bytes of the same letterboxed frame,
    encode/decode/head/tail ms, and fidelity (mAP50, mAP50-95 against the unsplit model's own detections)."""
    import json

    from splitinfer.bench.codec import run_codec_bench

    options = codec_options(bits, granularity, clip, level, keyframe_interval, set_ or [])
    with err_console.status("measuring…") as status:
        result = run_codec_bench(
            model, source, cut=cut, imgsz=imgsz, limit=frames, codec_options=options, device=device,
            on_frame=lambda r: status.update(f"frame {r.frame}: {r.bits_per_value:.2f} bits/value"),
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2))
    if as_json:
        print_json(result)
        return
    _print_table(result)


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _print_table(r: Dict[str, Any]) -> None:
    shown = ("bits", "granularity", "clip", "layout", "level", "keyframe_interval")
    codec = " ".join(f"{k}={v}" for k, v in r["codec"].items() if k in shown)
    table = Table(title=f"{r['model']} cut {r['cut']} (layers {r['live_layers']}), {r['frames']} frames at "
                        f"{r['imgsz']}; codec {codec}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("bits per value", _fmt(r["bits_per_value"])),
        ("payload bytes / frame", f"{r['payload_bytes_mean']:,.0f}"),
        ("JPEG q90 bytes / frame", f"{r['jpeg_bytes_mean']:,.0f}"),
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
    console.print(table)


def _floats(text: str) -> List[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SplitInferError(f"--links {text!r}: expected Mbit/s values separated by commas, e.g. 5,20,100") from None


@app.command("e2e")
def bench_e2e(
    model: Annotated[Optional[str], typer.Option(help=".pt checkpoint or .yaml config (default: the cached YOLOv8s "
                                                      "checkpoint, see `python -m splitinfer.bench.weights`).")] = None,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 320,
    links: Annotated[str, typer.Option(help="Link rates in Mbit/s, comma-separated.")] = "5,20,100,1000",
    cuts: Annotated[str, typer.Option(help="Cuts to measure, comma-separated: a|b|c|d|N|auto.")] = "a,b,c,d,auto",
    frames: Annotated[int, typer.Option(help="Measured frames per configuration (after the warm-up).")] = 20,
    bits: Annotated[int, typer.Option(help="Codec bit width.")] = 4,
    baselines: Annotated[bool, typer.Option(help="Also measure the whole model on the head and JPEG q90 frames "
                                                 "sent to the tail.")] = True,
    quick: Annotated[bool, typer.Option("--quick", help="Two links (5, 100 Mbit/s), cuts a, d and auto, 8 "
                                                        "frames: about a minute.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where e2e.json, e2e.csv and e2e.png go.")] = Path(
        "bench/results"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Head and tail in two network namespaces joined by a tbf-shaped veth (needs root and iproute2): measured
    end-to-end latency p50/p99, bytes per frame and the cost model's prediction, per link and per cut, against
    the whole model on the head and JPEG frames to the tail."""
    from splitinfer.bench.e2e import E2EOptions, run_e2e

    if model is None:
        from splitinfer.bench.weights import realistic_checkpoint

        try:
            model = str(realistic_checkpoint(fetch=False))
        except SplitInferError:
            model = "yolo11n.yaml"
            err_console.print("no cached YOLOv8s checkpoint: using yolo11n.yaml with random weights (timings and "
                              "sizes are real)")
    opts = E2EOptions(model=model, imgsz=imgsz, links=_floats(links), cuts=[c for c in cuts.split(",") if c],
                      frames=frames, bits=bits, baselines=baselines, out=out)
    if quick:
        opts.links, opts.cuts, opts.frames = [5.0, 100.0], ["a", "d", "auto"], 8
    with err_console.status("starting…") as status:

        def say(line: str) -> None:
            status.update(line.strip())
            err_console.print(line)

        result = run_e2e(opts, say=say)
    if as_json:
        print_json(result)
        return
    _print_e2e(result)


def _print_e2e(result: Dict[str, Any]) -> None:
    table = Table(title=f"{Path(result['model']).name} at {result['imgsz']}: end-to-end latency per link")
    for name in ("Mbit/s", "config", "cut", "p50 ms", "p99 ms", "predicted ms", "err %", "profile-only err %",
                 "bytes/frame"):
        table.add_column(name, justify="left" if name == "config" else "right")
    for r in result["rows"]:
        table.add_row(_fmt(r["link_mbit"], "g"), r["config"], _fmt(r["cut"], "d"), _fmt(r["p50_ms"], ".1f"),
                      _fmt(r["p99_ms"], ".1f"), _fmt(r["predicted_ms"], ".1f"), _fmt(r["predicted_err_pct"], "+.1f"),
                      _fmt(r.get("predicted_profile_err_pct"), "+.1f"), f"{r['bytes_per_frame']:,}")
    console.print(table)
    for s in result["summary"]:
        verdict = s["verdict"]
        console.print(f"{s['link_mbit']:g} Mbit/s: best {s['best_config']} (cut {s['best_cut']}, "
                      f"{s['best_p50_ms']} ms); auto cut {s['auto_cut']} {_fmt(s['auto_vs_best_pct'], '+.1f')} % "
                      "vs best, predicted "
                      f"{_fmt(s['auto_predicted_err_pct'], '+.1f')} % vs measured; JPEG {s['jpeg_p50_ms']} ms, whole "
                      f"on head {s['whole_on_head_p50_ms']} ms: {verdict}")
    for note in result["notes"]:
        console.print(f"note: {note}")
    console.print(f"wrote {result['options']['out']}/e2e.json, e2e.csv, e2e.png in {result['wall_s']} s")
