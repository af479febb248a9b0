"""``splitctl calibrate MODEL --cut … --frames …``: the codec's calibration tables for a model, one per cut."""

from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from ._console import console, err_console, print_json


def calibrate(
    model: Annotated[str, typer.Argument(help="The fleet's model: a .pt checkpoint or a .yaml config.")],
    frames: Annotated[str, typer.Option("--frames", help="What the cameras see: a folder of images or a video "
                                                         "(never the frames you will measure fidelity on).")],
    cut: Annotated[Optional[List[str]], typer.Option(
        "--cut", help="A cut to calibrate (a|b|c|d or a layer number); repeatable. Default: the four presets.")
    ] = None,
    imgsz: Annotated[int, typer.Option(help="Network input size (the fleet's model.imgsz).")] = 640,
    count: Annotated[int, typer.Option("--count", min=1, help="Frames to calibrate on.")] = 16,
    every: Annotated[int, typer.Option("--every", min=1, help="Take one frame in this many (videos).")] = 1,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder the tables are written to.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Measure how much each channel crossing each cut matters to MODEL's detections, on frames like the
    cameras', and write one table per cut (``<model>-<cut>-<imgsz>.npz``). Heads whose cut has a table send
    several times fewer bytes at the same fidelity (``--quality``); list the tables in fleet.yaml under
    ``model.tables`` (this command prints the lines), and deploy copies them next to the model."""
    from splitinfer.head.sources import sample_frames
    from splitinfer.splitting import load_model
    from splitinfer.splitting.model import default_imgsz, file_sha256
    from splitinfer.splitting.sensitivity import calibrate_files

    cuts = cut or ["a", "b", "c", "d"]
    out.mkdir(parents=True, exist_ok=True)
    with err_console.status(f"loading {model} and {count} frame(s) of {frames}…"):
        m = load_model(model)
        size = default_imgsz(m, imgsz)
        images = sample_frames(frames, count, every=every)
    with err_console.status(f"calibrating {len(cuts)} cut(s) on {len(images)} frame(s)…"):
        made = calibrate_files(m, cuts, images, folder=out, stem=Path(model).stem, imgsz=size)
    rows: List[Dict[str, Any]] = [
        {"cut": c, "layer": t.cut, "layers": list(t.layers), "path": str(p), "sha256": file_sha256(p),
         "digest": t.hexdigest, "channels_sent": int(sum(int((s > 0).sum()) for s in t.sensitivity)),
         "channels": int(sum(t.channels()))}
        for c, (t, p) in zip(cuts, made)
    ]
    if as_json:
        print_json({"model": model, "imgsz": size, "frames": len(images), "source": frames, "tables": rows})
        return
    table = Table(title=f"Calibration tables of {model} at {size}, on {len(images)} frame(s) of {frames}")
    for col in ("cut", "layer", "channels sent", "file", "sha256"):
        table.add_column(col, justify="right" if col in ("layer", "channels sent") else "left")
    for r in rows:
        table.add_row(r["cut"], str(r["layer"]), f"{r['channels_sent']} of {r['channels']}", r["path"],
                      r["sha256"][:16] + "…")
    console.print(table)
    console.print("In fleet.yaml, under model: (paths relative to the fleet file)", highlight=False)
    console.print("  tables:", highlight=False)
    for r in rows:
        console.print(f'    - {{path: {r["path"]}, sha256: "{r["sha256"]}"}}', highlight=False, markup=False,
                      soft_wrap=True)
