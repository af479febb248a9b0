"""``splitctl inspect MODEL``: the layers, and what crosses every cut."""


import typer
from rich.table import Table
from typing_extensions import Annotated

from ._console import console, err_console, print_json


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def inspect_model(
    model: Annotated[str, typer.Argument(help="A .pt checkpoint or a .yaml config (e.g. yolo11n.yaml).")],
    imgsz: Annotated[int, typer.Option(help="Square network input size.")] = 640,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Show the layers of MODEL, and for each cut the tensors that cross it and their size at fp32, 8 and 4 bits."""
    from splitinfer.splitting import load_model
    from splitinfer.splitting.inspect import inspect_cuts
    from splitinfer.splitting.model import default_imgsz

    with err_console.status(f"loading {model}…"):
        m = load_model(model)
        imgsz = default_imgsz(m, imgsz)
        layers, cuts = inspect_cuts(m, imgsz)
    frame_bytes = 3 * imgsz * imgsz
    if as_json:
        print_json({
            "model": m.source, "family": m.family, "fingerprint": m.fingerprint, "imgsz": imgsz,
            "frame_bytes": frame_bytes, "presets": m.graph.presets() if any(c.preset for c in cuts) else {},
            "layers": [{"index": la.index, "type": la.type, "inputs": list(la.inputs), "shape": list(la.shape),
                        "params": la.params} for la in layers],
            "cuts": [c.to_dict() for c in cuts],
        })
        return

    table = Table(title=f"{m.source} ({m.family}, {len(layers)} layers, input {imgsz}×{imgsz})")
    for col in ("layer", "type", "from", "output", "params"):
        table.add_column(col, justify="right" if col in ("layer", "params") else "left")
    for la in layers:
        table.add_row(str(la.index), la.type, ",".join(map(str, la.inputs)), "×".join(map(str, la.shape[1:])) or "—",
                      f"{la.params:,}")
    console.print(table)

    cut_table = Table(title=f"Cuts: the head runs layers 0..N-1 (one {imgsz}×{imgsz} frame is {_human(frame_bytes)} "
                            "as uint8)")
    for col in ("cut N", "preset", "live layers", "values", "fp32", "8-bit", "4-bit"):
        cut_table.add_column(col, justify="left" if col in ("preset", "live layers") else "right")
    for c in cuts:
        style = "bold" if c.preset else None
        cut_table.add_row(str(c.cut), c.preset or "", ",".join(map(str, c.live)), f"{c.values / 1e6:.2f} M",
                          _human(c.bytes_at(32)), _human(c.bytes_at(8)), _human(c.bytes_at(4)), style=style)
    console.print(cut_table)
