"""``splitctl down``: remove the containers deploy created, device by device (heads first), and nothing else."""

# No ``from __future__ import annotations`` here: Typer on Python 3.8 needs eager annotations.

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

import typer
from rich.markup import escape
from rich.table import Table
from typing_extensions import Annotated

from ._console import console, err_console, print_json
from ._options import FleetFile, Json, Timeout

if TYPE_CHECKING:
    from splitinfer.deploy import Removal
    from splitinfer.fleet import Fleet


def down(
    only: Annotated[
        Optional[List[str]], typer.Option("--only", metavar="ID", help="Only this device; repeat.")
    ] = None,
    file: FleetFile = Path("fleet.yaml"),
    as_json: Json = False,
    stop_timeout: Annotated[
        int, typer.Option(min=0, metavar="SECONDS", help="How long each node gets to stop before it is killed.")
    ] = 10,
    timeout: Timeout = 10.0,
) -> None:
    """Stop and remove each device's container `splitinfer-<ID>` (and a `-previous` an interrupted deploy left).

    Images, volumes and data on the devices are kept, and so is any container that does not carry this
    fleet's labels. Heads go first, then tails. An unreachable engine does not stop the others; exit status 1
    when any device could not be cleaned up.
    """
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    results = take_down(store.fleet, store.path, only or (), timeout=timeout, stop_timeout=stop_timeout)
    if as_json:
        print_json({"fleet": store.fleet.fleet, "devices": [r.to_json() for r in results],
                    "ok": all(r.ok for r in results)})
    else:
        console.print(_table(store.fleet.fleet, results))
    if not report(results):
        raise typer.Exit(1)


def take_down(fleet: "Fleet", fleet_file: Path, only: Sequence[str], *, timeout: float,
              stop_timeout: int = 10) -> List["Removal"]:
    """Run the teardown for ``only`` (default: every device) and forget the removed ones in the state file."""
    from splitinfer.deploy import DeployState, state_path, teardown
    from splitinfer.deploy.teardown import connect_engine

    return teardown(fleet, only=only, connect=lambda d: connect_engine(d, timeout=timeout),
                    stop_timeout=stop_timeout, state=DeployState.load(state_path(fleet_file)))


def report(results: Sequence["Removal"]) -> bool:
    """What was removed, and each problem, on stderr; True when every device was cleaned up."""
    for result in results:
        if result.message:
            colour = "yellow" if result.ok else "red"
            text = result.message if result.message.startswith(f"{result.device}: ") else (
                f"{result.device}: {result.message}")
            err_console.print(f"[{colour}]{escape(text)}[/]", highlight=False)
    removed = sum(len(r.removed) for r in results)
    failed = [r for r in results if not r.ok]
    err_console.print(f"removed {removed} container{'s' * (removed != 1)}; images, volumes and data are kept")
    if failed:
        err_console.print(f"[bold red]{len(failed)} of {len(results)} devices not cleaned up[/]")
    return not failed


def _table(fleet: str, results: Sequence["Removal"]) -> Table:
    table = Table(title=f"fleet {escape(fleet)}: down", title_justify="left")
    for column in ("device", "role", "result", "containers removed"):
        table.add_column(column)
    colours = {"removed": "green", "none": "dim", "unreachable": "red", "failed": "red"}
    for r in results:
        shown = "nothing to remove" if r.status == "none" else r.status
        table.add_row(escape(r.device), r.role, f"[{colours[r.status]}]{shown}[/]",
                      escape(", ".join(r.removed) or "—"))
    return table
