"""``splitctl run --local``: the whole system on one machine, the main job out of the box."""

# No ``from __future__ import annotations`` here: Typer on Python 3.8 needs eager annotations.

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

from ._console import console, err_console, print_json


def run(
    local: Annotated[bool, typer.Option("--local", help="Everything on this machine (the only mode today).")] = False,
    model: Annotated[str, typer.Option(help=".pt checkpoint or .yaml config. A missing yolo11n.pt falls back to "
                                            "yolo11n.yaml (random weights).")] = "yolo11n.pt",
    source: Annotated[str, typer.Option(help="Video, image folder, camera index, rtsp:// URL, GStreamer pipeline, "
                                             "or synthetic[:N].")] = "synthetic",
    frames: Annotated[Optional[int], typer.Option(min=0, help="Frames to run (default: 60; 0 = the whole source).")
                      ] = 60,
    cut: Annotated[str, typer.Option(help="a|b|c|d, a layer number, local (the whole model on the head), offload "
                                          "(frames to the tail; needs --allow-offload), or auto (the coordinator "
                                          "picks from the nodes' profiles).")] = "b",
    allow_offload: Annotated[bool, typer.Option("--allow-offload", help="Let the head send its frames to the tail "
                                                                       "(offload).")] = False,
    quality: Annotated[int, typer.Option(min=1, max=100, help="Codec quality 1..100 at calibrated cuts (higher: "
                                                              "more bytes, detections closer to the whole model's)."
                                         )] = 50,
    table: Annotated[Optional[List[Path]], typer.Option(
        "--table", metavar="FILE", help="A calibration table (splitctl calibrate); repeatable. Without one the "
                                        "codec is calibrated on the source's first frames.")] = None,
    calibrate: Annotated[bool, typer.Option(help="Calibrate the codec on the source's first frames when no --table "
                                                 "is given (--no-calibrate: the version-1 codec at --bits).")] = True,
    keyframe_interval: Annotated[int, typer.Option(min=0, help="A keyframe every N frames, delta frames between "
                                                               "(0: none; a moving camera).")] = 10,
    bits: Annotated[int, typer.Option(help="Codec bit width (2..8, or 16/32 for float passthrough) where no "
                                           "calibration table covers the cut.")] = 4,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    batch: Annotated[int, typer.Option(min=1, help="Frames per head batch.")] = 1,
    fps: Annotated[float, typer.Option(min=0, help="Pace the source like a camera (0: as fast as the head goes, "
                                                   "every frame of a file detected).")] = 0.0,
    out: Annotated[Path, typer.Option(help="Folder for output.csv, detections.jsonl, frames/ and logs/.")] = Path(
        "out"),
    annotate: Annotated[bool, typer.Option(help="Write annotated frames to OUT/frames.")] = True,
    broker: Annotated[str, typer.Option(help="mosquitto (if installed) or embedded.")] = "mosquitto",
    stall: Annotated[float, typer.Option(min=1, help="Give up when frames are outstanding and the tail has made "
                                                     "no progress for this many seconds.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
) -> None:
    """Start a broker, the coordinator, a tail and a head as separate processes, and run a source through them.

    The source, cut and bits are checked before anything starts, the model before any process starts."""
    import signal
    import sys

    from splitinfer.cluster.run_local import LocalRun, run_local

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the broker and the nodes on the way out
    if not local:
        raise FleetConfigError("only --local is supported: it runs the whole system on this machine "
                              "(use `splitctl deploy` for a fleet)")
    job = LocalRun(model=model, source=source, frames=frames or None, cut=cut, bits=bits, imgsz=imgsz, batch=batch,
                   allow_offload=allow_offload, quality=quality, tables=table or [], calibrate=calibrate,
                   keyframe_interval=keyframe_interval,
                   fps=fps, out=out, annotate=annotate, broker=broker, stall=stall)

    def note(text: str) -> None:
        err_console.print(f"[yellow]warning: {escape(text)}[/]", soft_wrap=True, highlight=False)

    with _progress() as show:
        summary = run_local(job, on_status=show, on_note=note)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


@contextmanager
def _progress() -> Iterator[Callable[[Any], None]]:
    """One line on stderr while the run goes: model, phase, frames sent and detected (a terminal only: piped
    output gets no progress line)."""
    if not err_console.is_terminal:
        yield lambda status: None
        return
    columns = (TextColumn("{task.fields[model]}"), TextColumn("{task.description}"),
               TextColumn("sent {task.fields[sent]} · detected"), BarColumn(bar_width=20), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("checking", total=None, model="", sent=0)

        def show(status: Any) -> None:
            progress.update(task, description=status.phase, completed=status.detected, total=status.total,
                            model=escape(status.model), sent=status.sent)

        yield show


def _print_summary(summary: Dict[str, Any]) -> None:
    cuts = summary["cuts"]
    layers = " → ".join(cuts) if len(cuts) > 1 else str(summary["cut"])
    codec = f"quality {summary['quality']}" if summary["tables"] else f"{summary['bits']}-bit"
    table = Table(title=f"splitctl run --local: {escape(summary['model'])} cut {escape(summary['cut_spec'])} "
                        f"(layer {layers}), {codec}, {summary['broker']} broker")
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for stage, v in summary["stages_ms"].items():
        name = "e2e (queueing incl.)" if stage == "e2e_ms" else stage.replace("_ms", "")
        table.add_row(name, *("—" if v[q] is None else str(v[q]) for q in ("p50", "p99")))
    console.print(table)
    console.print(f"{summary['frames']} of {summary['frames_captured']} frames detected ({summary['dropped']} "
                  f"dropped), {summary['fps']} fps delivered, {summary['payload_bytes_mean']:,} bytes/frame; "
                  "e2e is capture → detections, queueing included (--fps paces the source)")
    console.print(f"→ {escape(summary['out'])}/: output.csv, detections.jsonl, frames/, logs/")
