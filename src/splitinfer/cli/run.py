"""``splitctl run --local``: the whole system on one machine, the main job out of the box."""


from pathlib import Path
from typing import Optional

import typer
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
                                             "or synthetic.")] = "synthetic",
    frames: Annotated[Optional[int], typer.Option(help="Frames to run (default: 60; 0 = the whole source).")] = 60,
    cut: Annotated[str, typer.Option(help="a|b|c|d or a layer number.")] = "b",
    bits: Annotated[int, typer.Option(help="Codec bit width (2..8, or 16/32 for float passthrough).")] = 4,
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    batch: Annotated[int, typer.Option(help="Frames per head batch.")] = 1,
    fps: Annotated[float, typer.Option(help="Pace the source like a camera (0: as fast as the head goes).")] = 0.0,
    out: Annotated[Path, typer.Option(help="Folder for output.csv, detections.jsonl, frames/ and logs/.")] = Path(
        "out"),
    annotate: Annotated[bool, typer.Option(help="Write annotated frames to OUT/frames.")] = True,
    broker: Annotated[str, typer.Option(help="mosquitto (if installed) or embedded.")] = "mosquitto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
) -> None:
    """Start a broker, the coordinator, a tail and a head as separate processes, and run a source through them."""
    import signal
    import sys

    from splitinfer.cluster.run_local import LocalRun, run_local

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the broker and the nodes on the way out
    if not local:
        raise FleetConfigError("only --local is supported: it runs the whole system on this machine "
                              "(use `splitctl deploy` for a fleet)")
    job = LocalRun(model=model, source=source, frames=frames or None, cut=cut, bits=bits, imgsz=imgsz, batch=batch,
                   fps=fps, out=out, annotate=annotate, broker=broker)
    with Progress(TextColumn("[bold]frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("frames", total=job.frames)
        summary = run_local(job, on_progress=lambda n, total: progress.update(task, completed=n))
    for note in summary["notes"]:
        err_console.print(f"[yellow]note:[/] {note}")
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"splitctl run --local: {summary['model']} cut {summary['cut_spec']} "
                        f"(layer {summary['cut']}), {summary['bits']}-bit, {summary['broker']} broker")
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for stage, v in summary["stages_ms"].items():
        name = "e2e (queueing incl.)" if stage == "e2e_ms" else stage.replace("_ms", "")
        table.add_row(name, str(v["p50"]), str(v["p99"]))
    console.print(table)
    console.print(f"{summary['frames']} frames ({summary['dropped']} dropped), {summary['fps']} fps delivered, "
                  f"{summary['payload_bytes_mean']:,} bytes/frame; e2e is capture → detections, queueing included "
                  f"(--fps paces the source)")
    console.print(f"→ {summary['out']}/: output.csv, detections.jsonl, frames/, logs/")
