"""``splitctl fleet``: the inventory in fleet.yaml (add, list, rm) and a reachability check (check)."""

# No ``from __future__ import annotations`` here: on Python < 3.10 (the Jetson image runs 3.8) Typer reads
# parameter annotations without evaluating strings, so postponed ``Annotated[...]`` options would silently
# turn into positional arguments. Annotations below must therefore be valid Python 3.8 expressions.

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import DeployError, FleetConfigError

from ._console import console, err_console, print_json
from ._options import FleetFile, Json, Timeout, format_bytes

if TYPE_CHECKING:
    from splitinfer.fleet import Device, Fleet

app = typer.Typer(
    help="Edit the fleet inventory (fleet.yaml) and check every device's Docker engine.", no_args_is_help=True
)

_OPTION_NAMES = {"id": "ID", "docker_tls": "--docker-tls"}


@app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="Device id: letters, digits, '-', '_', '.'.")],
    role: Annotated[str, typer.Option("--role", help="head (camera side) or tail (GPU server).")],
    docker: Annotated[
        str, typer.Option("--docker", help="Docker endpoint: unix://…, tcp://HOST:2376 or ssh://USER@HOST.")
    ],
    source: Annotated[Optional[str], typer.Option(help="Head input: camera index, file, rtsp://… or csi://0.")] = None,
    cut: Annotated[Optional[str], typer.Option(help="Per-device cut: a|b|c|d|auto|N (heads).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="'nvidia' on Jetson (GPU through the nvidia runtime).")] = None,
    gpus: Annotated[Optional[str], typer.Option(help="'all' or a count (x86 with the NVIDIA toolkit).")] = None,
    env: Annotated[Optional[List[str]], typer.Option("--env", help="Extra KEY=VALUE; repeat.")] = None,
    volume: Annotated[Optional[List[str]], typer.Option("--volume", help="HOST:CONTAINER[:ro]; repeat.")] = None,
    device: Annotated[Optional[List[str]], typer.Option("--device", help="e.g. /dev/video0; repeat.")] = None,
    image: Annotated[Optional[str], typer.Option(help="Image for this device instead of the fleet's.")] = None,
    docker_tls: Annotated[Optional[str], typer.Option(help="Folder with ca.pem, cert.pem, key.pem (tcp://).")] = None,
    file: FleetFile = Path("fleet.yaml"),
) -> None:
    """Add a device to fleet.yaml (created if missing), keeping its comments."""
    options: Dict[str, Any] = {
        "id": device_id,
        "role": role,
        "docker": docker,
        "source": source,
        "cut": cut,
        "runtime": runtime,
        "gpus": gpus,
        "env": _env_pairs(env or []) or None,
        "volumes": volume or None,
        "devices": device or None,
        "image": image,
        "docker_tls": docker_tls,
    }
    from pydantic import ValidationError

    from splitinfer.fleet import Device, FleetStore, fleet_error

    try:
        new = Device.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise fleet_error(exc, path=None, rename=_option_name) from None
    from splitinfer.deploy.live import model_path

    store = FleetStore.open(file, create=True)
    created = not store.path.exists()
    store.add_device(new)
    default_model = model_path(store.fleet)
    with_model = store.ensure_model(default_model)
    store.save()
    note = " (new file: edit broker.url)" if created else ""
    err_console.print(f"added {new.role} [bold]{escape(new.id)}[/] to {escape(str(store.path))}{note}")
    if with_model:
        err_console.print(f"wrote model: {{path: {default_model}, imgsz: 640}}, what every node loads unless you "
                          "edit it (a .pt file as the nodes see it; sha256: pins it)")


def _option_name(field: str) -> str:
    head = field.split(".", 1)[0].split("[", 1)[0]
    return _OPTION_NAMES.get(head, "--" + {"volumes": "volume", "devices": "device"}.get(head, head).replace("_", "-"))


def _env_pairs(items: List[str]) -> Dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FleetConfigError(f"expected KEY=VALUE, got {item!r}", field="--env")
        pairs[key] = value
    return pairs


@app.command("list")
def list_(file: FleetFile = Path("fleet.yaml"), as_json: Json = False) -> None:
    """List the devices in fleet.yaml."""
    from splitinfer.fleet import FleetStore

    fleet = FleetStore.open(file).fleet
    rows = [_device_row(fleet, d) for d in fleet.devices]
    if as_json:
        print_json({"fleet": fleet.fleet, "broker": fleet.broker.url, "devices": rows})
        return
    table = Table(title=f"fleet {fleet.fleet} · broker {fleet.broker.url}", title_justify="left")
    for column in ("id", "role", "docker", "cut", "gpu", "source", "image"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                escape(str(row[c] if row[c] is not None else "—"))
                for c in ("id", "role", "docker", "cut", "gpu", "source", "image")
            )
        )
    console.print(table)


def _device_row(fleet: "Fleet", device: "Device") -> Dict[str, Any]:
    gpu = "nvidia runtime" if device.runtime else (f"gpus {device.gpus}" if device.gpus is not None else None)
    return {
        "id": device.id,
        "role": device.role,
        "docker": device.docker,
        "cut": fleet.cut_for(device) if device.role == "head" else None,
        "gpu": gpu,
        "source": device.source,
        "image": fleet.image_for(device).name,
    }


@app.command("rm")
def rm(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    file: FleetFile = Path("fleet.yaml"),
    down: Annotated[bool, typer.Option("--down", help="First stop and remove its container (`splitctl down "
                                                      "--only ID`); fleet.yaml is left as it was if that fails.")
                    ] = False,
    timeout: Timeout = 10.0,
) -> None:
    """Remove a device from fleet.yaml; with --down, its container too (otherwise it is left running)."""
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    before = store.fleet
    removed = store.remove_device(device_id)  # in memory: an unknown id stops here
    if down:
        from .down import report, take_down

        if not report(take_down(before, store.path, [device_id], timeout=timeout)):
            err_console.print(f"{escape(str(store.path))} is unchanged")
            raise typer.Exit(1)
    store.save()
    left = "" if down else ("; its container, if any, is left on the device (`fleet rm --down` removes both; now: "
                            f"`docker rm -f splitinfer-{escape(removed.id)}` there)")
    err_console.print(f"removed {removed.role} [bold]{escape(removed.id)}[/] from {escape(str(store.path))}{left}")


@app.command("check")
def check(
    file: FleetFile = Path("fleet.yaml"),
    as_json: Json = False,
    timeout: Timeout = 5.0,
) -> None:
    """Reach every device's Docker engine at once and report arch, engine version, GPU access and free disk.

    Unreachable engines are listed, not fatal. Exit status: 0 when every engine answered, 1 otherwise
    (so `splitctl fleet check && splitctl deploy` is safe in scripts).
    """
    from splitinfer.fleet import FleetStore

    fleet = FleetStore.open(file).fleet
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(fleet.devices)))) as pool:
        rows = list(pool.map(lambda d: _check_one(d, timeout), fleet.devices))
    down = [r for r in rows if not r["reachable"]]
    if as_json:
        print_json({"fleet": fleet.fleet, "devices": rows, "reachable": len(rows) - len(down), "total": len(rows)})
    else:
        console.print(_check_table(fleet, rows))
    if down:
        for row in down:
            err_console.print(f"[red]{escape(row['error'])}[/]", highlight=False)
        err_console.print(f"[bold red]{len(down)} of {len(rows)} engines unreachable[/]")
        raise typer.Exit(1)


def _check_one(device: "Device", timeout: float) -> Dict[str, Any]:
    from splitinfer.deploy.engine import Engine

    row: Dict[str, Any] = {"id": device.id, "role": device.role, "docker": device.docker, "reachable": False}
    try:
        with Engine.connect(device.docker, device=device.id, tls_dir=device.docker_tls, timeout=timeout) as engine:
            info = engine.info()
    except DeployError as exc:
        row["error"] = str(exc)
        return row
    row.update(
        reachable=True,
        arch=info.arch,
        engine=info.version,
        api=info.api_version,
        os=info.os,
        runtimes=list(info.runtimes),
        nvidia_runtime=info.nvidia_runtime,
        gpus=info.gpus,
        free_disk=info.free_disk,
        cpus=info.cpus,
        memory=info.memory,
        notes=_notes(device, info.nvidia_runtime),
    )
    return row


def _notes(device: "Device", nvidia_runtime: bool) -> List[str]:
    notes = []
    if device.runtime == "nvidia" and not nvidia_runtime:
        notes.append("runtime: nvidia requested but the engine has no nvidia runtime")
    if device.gpus is not None and not nvidia_runtime:
        notes.append("gpus requested: needs the NVIDIA Container Toolkit on the device")
    return notes


def _check_table(fleet: "Fleet", rows: List[Dict[str, Any]]) -> Table:
    table = Table(title=f"fleet {fleet.fleet}: Docker engines", title_justify="left")
    for column in ("id", "role", "docker", "arch", "engine", "nvidia", "gpus", "free disk", "notes"):
        table.add_column(column)
    for row in rows:
        if not row["reachable"]:
            table.add_row(
                escape(row["id"]),
                row["role"],
                escape(row["docker"]),
                "[red]unreachable[/]",
                "",
                "",
                "",
                "",
                "see below",
            )
            continue
        table.add_row(
            escape(row["id"]),
            row["role"],
            escape(row["docker"]),
            row["arch"],
            row["engine"],
            "yes" if row["nvidia_runtime"] else "no",
            str(row["gpus"]) if row["gpus"] is not None else "—",
            format_bytes(row["free_disk"]),
            escape("; ".join(row["notes"])),
        )
    return table
