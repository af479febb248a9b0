"""``splitctl bench codec``: payload size, speed and fidelity of the codec on real frames."""


from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import SplitInferError

from ._console import console, err_console, print_json

app = typer.Typer(help="Measure the codec (and, later, the whole system on shaped links).", no_args_is_help=True)


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
