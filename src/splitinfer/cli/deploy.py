"""``splitctl deploy``: bring every device's container to what fleet.yaml says, tails first, with rollback."""

# No ``from __future__ import annotations`` here: on Python < 3.10 (the Jetson image runs 3.8) Typer reads
# parameter annotations without evaluating strings, so postponed ``Annotated[...]`` options would silently
# turn into positional arguments. Annotations below must therefore be valid Python 3.8 expressions.

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import DeployError

from ._console import console, err_console, print_json
from ._options import FleetFile, Json, Timeout

if TYPE_CHECKING:
    from splitinfer.deploy import DeployResult, Step


def deploy(
    cut: Annotated[Optional[str], typer.Option(help="Cut for every head in this deployment: a|b|c|d|auto|N.")] = None,
    bits: Annotated[Optional[int], typer.Option(help="Feature bits for this deployment: 2..8, or 16/32.")] = None,
    only: Annotated[
        Optional[List[str]], typer.Option("--only", metavar="ID", help="Deploy only this device; repeat.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    as_json: Json = False,
    file: FleetFile = Path("fleet.yaml"),
    grace: Annotated[
        float,
        typer.Option(min=0, metavar="SECONDS", help="How long a new container must keep running to count as healthy."),
    ] = 5.0,
    ready_timeout: Annotated[
        float, typer.Option(min=1, metavar="SECONDS", help="How long to wait for the node to report online.")
    ] = 60.0,
    timeout: Timeout = 10.0,
) -> None:
    """Deploy the fleet: per device, create or replace the container `splitinfer-<ID>` when its config changed.

    Tails first, then heads; each must stay up for --grace seconds and report online over MQTT. An unchanged
    device is not restarted. A container that does not come up is replaced by the previous one again, and the
    rollout stops there (exit status 1, with its last log lines).

    Cut, bits and batch never recreate a container: deploy publishes them in the fleet's retained policy, which
    the coordinator (`splitctl coordinator -f fleet.yaml`) turns into live assignments; they are also recorded
    in fleet.state.json, next to fleet.yaml.
    """
    from splitinfer.deploy import Deployer, DeployState, connect_device, plan_targets, runtime_hooks, state_path
    from splitinfer.deploy.hooks import RuntimeHooks as runtime_hooks_offline
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    fleet = store.fleet
    targets = plan_targets(fleet, base_dir=store.path.resolve().parent, cut=cut, bits=bits, only=only or (),
                           fleet_file=str(store.path))
    if not targets:
        err_console.print("no devices in the fleet: add some with `splitctl fleet add`")
        raise typer.Exit(1 if not dry_run else 0)
    hooks = runtime_hooks(fleet, strict=True) if not dry_run else runtime_hooks_offline()
    if hooks.note:
        err_console.print(f"[yellow]note:[/] {escape(hooks.note)}")
    with _progress([t.device.id for t in targets], quiet=as_json) as on_event:
        deployer = Deployer(
            connect=lambda target: connect_device(target, timeout=timeout),
            readiness=hooks.readiness,
            assignments=hooks.assignments,
            state=None if dry_run else DeployState.load(state_path(store.path)),
            grace=grace,
            ready_timeout=ready_timeout,
            on_event=on_event,
        )
        steps = deployer.plan(targets)
        if dry_run:
            deployer.close(steps)
        else:
            try:
                results = deployer.apply(steps)
            finally:
                hooks.close()
    if dry_run:
        _show_plan(steps, as_json)
        if any(s.action is None for s in steps):
            raise typer.Exit(1)
        return
    _show_results(fleet.fleet, results, as_json)
    failed = next((r for r in results if r.status == "failed"), None)
    if failed is not None:
        if failed.logs:
            err_console.print(f"[bold]last log lines of {escape(failed.device)}:[/]")
            err_console.print(escape(failed.logs), highlight=False)
        raise DeployError(failed.message)


@contextmanager
def _progress(devices: List[str], *, quiet: bool) -> Iterator[Callable[[str, str], None]]:
    """A Rich progress line per device on a terminal; plain event lines on stderr otherwise."""
    if quiet:
        yield lambda device, message: None
        return
    if not err_console.is_terminal:
        yield lambda device, message: err_console.print(f"{escape(device)}: {escape(message)}", highlight=False)
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=False
    ) as progress:
        tasks: Dict[str, TaskID] = {d: progress.add_task(escape(d), total=None) for d in devices}
        yield lambda device, message: progress.update(
            tasks[device], description=f"[bold]{escape(device)}[/] {escape(message)}"
        )


def _show_plan(steps: "List[Step]", as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": True, "devices": [s.to_json() for s in steps]})
        return
    table = Table(title="deploy plan (dry run: nothing changed)", title_justify="left")
    for column in ("order", "device", "role", "action", "why", "image", "torch", "gpu", "cut", "bits", "hash"):
        table.add_column(column)
    for index, step in enumerate(steps, 1):
        action = step.action.value if step.action else "[red]unreachable[/]"
        assignment = step.target.assignment
        spec = step.target.spec
        table.add_row(
            str(index),
            escape(step.device_id),
            step.target.device.role,
            action,
            escape(step.reason),
            escape(spec.image),
            spec.env.get("SPLITINFER_DEVICE", "—") + (" fp16" if spec.env.get("SPLITINFER_HALF") else ""),
            _gpu(spec.runtime, spec.gpus),
            str(assignment.cut if assignment.cut is not None else "—"),
            str(assignment.bits),
            step.target.config_hash,
        )
    console.print(table)
    models = steps[0].target.models if steps else ()
    if models:
        names = ", ".join(f"{m.name} ({m.sha256[:12]}…)" for m in models)
        err_console.print(f"model volume: {escape(names)}, copied to each device where its digest differs")


def _gpu(runtime: Optional[str], gpus: Optional[int]) -> str:
    """How the container reaches a GPU: the nvidia runtime (Jetson) or a device request (x86)."""
    if runtime:
        return f"runtime {runtime}"
    if gpus is not None:
        return f"request {'all' if gpus < 0 else gpus}"
    return "—"


def _show_results(fleet: str, results: "List[DeployResult]", as_json: bool) -> None:
    if as_json:
        print_json({"fleet": fleet, "ok": all(r.ok for r in results), "devices": [r.to_json() for r in results]})
        return
    styles = {"failed": "red", "skipped": "yellow", "kept": "dim"}
    table = Table(title=f"deploy {fleet}", title_justify="left")
    for column in ("device", "role", "result", "container", "hash", "models copied", "cut", "bits", "assignment",
                   "time"):
        table.add_column(column)
    for r in results:
        style = styles.get(r.status, "green")
        cut = r.assignment.get("cut")
        table.add_row(
            escape(r.device),
            r.role,
            f"[{style}]{r.status}[/]",
            r.container_id[:12] or "—",
            r.config_hash,
            escape(", ".join(r.models_copied) or "—"),
            str(cut if cut is not None else "—"),
            str(r.assignment.get("bits", "—")),
            escape(r.assignment_status or "—"),
            f"{r.seconds:.1f}s",
        )
    console.print(table)
    changed = sum(r.status in ("created", "recreated", "started") for r in results)
    kept = sum(r.status == "kept" for r in results)
    err_console.print(f"{changed} changed, {kept} unchanged, {len(results) - changed - kept} failed or skipped")
