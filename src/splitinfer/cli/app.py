"""The ``splitctl`` Typer app. Each noun lives in its own module and is mounted here.

Commands raise :class:`~splitinfer.errors.SplitInferError` for bad input; :class:`_Group` catches it once,
prints it in red on stderr and exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from splitinfer import __version__
from splitinfer.errors import SplitInferError

from ._console import err_console


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # click.Context (typer may vendor its own click)
        try:
            return super().invoke(ctx)
        except SplitInferError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="splitctl",
    help="Split inference for Ultralytics YOLO across an edge fleet.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"splitctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Split inference for Ultralytics YOLO across an edge fleet."""


def _mount() -> None:
    # One line per noun. Modules imported here must stay light: heavy imports go inside the commands.
    from . import bench, broker, calibrate, coordinator, deploy, down, fleet, image, inspect, logs, node, run, status

    app.add_typer(fleet.app, name="fleet")
    app.command("deploy")(deploy.deploy)
    app.command("down")(down.down)
    app.command("status")(status.status)
    app.command("logs")(logs.logs)
    app.add_typer(image.app, name="image")
    app.add_typer(broker.app, name="broker")
    app.command("coordinator")(coordinator.coordinator)
    app.add_typer(node.app, name="node")
    app.command("run")(run.run)
    app.command("inspect")(inspect.inspect_model)
    app.command("calibrate")(calibrate.calibrate)
    app.add_typer(bench.app, name="bench")


_mount()


def main() -> None:
    app()
