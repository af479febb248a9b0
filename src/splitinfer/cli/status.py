"""``splitctl status``: every device's container, from its Docker engine, plus the live MQTT view when present."""

# No ``from __future__ import annotations`` here: on Python < 3.10 (the Jetson image runs 3.8) Typer reads
# parameter annotations without evaluating strings, so postponed ``Annotated[...]`` options would silently
# turn into positional arguments. Annotations below must therefore be valid Python 3.8 expressions.

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typing_extensions import Annotated

from splitinfer.errors import DeployError, FleetConfigError

from ._console import console, err_console, print_json
from ._options import FleetFile, Json, Timeout

if TYPE_CHECKING:
    from splitinfer.fleet import Device, FleetStore

_MQTT_COLUMNS = ("mqtt", "live cut", "route", "fps", "p50 ms", "e2e pred/meas ms", "bytes/frame", "drops",
                 "last seen")


def status(
    file: FleetFile = Path("fleet.yaml"),
    as_json: Json = False,
    timeout: Timeout = 5.0,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between redraws with --watch.")] = 2.0,
) -> None:
    """Show each device: role, container state, image, whether its config hash matches fleet.yaml, start time,
    the cut the last deploy asked for, and the live view from MQTT: state, cut in use, route, fps, p50 latency,
    bytes per frame, drops, last seen.

    The MQTT columns show "—" when the fleet's broker cannot be reached or a device never reported. Exit
    status 0 even when an engine is unreachable (its row says so); use `splitctl fleet check` in scripts.
    """
    from splitinfer.deploy import DeployState, runtime_hooks, state_path
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    fleet = store.fleet
    hooks = runtime_hooks(fleet, timeout=min(timeout, 3.0))
    if hooks.note and not as_json:
        err_console.print(f"[yellow]note:[/] {hooks.note}")
    try:
        if not watch:
            rows = _rows(store, DeployState.load(state_path(store.path)), hooks.status, timeout)
            if as_json:
                print_json({"fleet": fleet.fleet, "devices": rows})
            else:
                console.print(_view(fleet.fleet, rows))
            return
        from contextlib import nullcontext

        from rich.live import Live

        # on a terminal the table redraws in place; piped, each round is printed after the last
        with Live(console=console, auto_refresh=False) if console.is_terminal else nullcontext() as live:
            while True:
                if hooks.status is not None:
                    hooks.status.refresh()  # type: ignore[attr-defined]
                table = _view(fleet.fleet, _rows(store, DeployState.load(state_path(store.path)), hooks.status,
                                                 timeout))
                if live is not None:
                    live.update(table, refresh=True)
                else:
                    console.print(table)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        hooks.close()


def _rows(store: "FleetStore", state: Any, source: Any, timeout: float) -> List[Dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(store.fleet.devices)))) as pool:
        rows = list(pool.map(lambda d: _row(store, d, timeout), store.fleet.devices))
    for row in rows:
        row["desired_cut"] = state.device(row["id"]).get("assignment", {}).get("cut")
        live = source.device_status(row["id"]) if source else None
        row["mqtt"] = (
            None
            if live is None
            else {
                "state": live.state,
                "cut": live.cut,
                "route": live.route,
                "fps": live.fps,
                "latency_ms": live.latency_ms,
                "bytes_per_frame": live.bytes_per_frame,
                "dropped": live.dropped,
                "last_seen": live.last_seen,
                "predicted_ms": live.predicted_ms,
                "measured_ms": live.measured_ms,
                "reason": live.reason,
            }
        )
    return rows


def _row(store: "FleetStore", device: "Device", timeout: float) -> Dict[str, Any]:
    from splitinfer.deploy import Engine, container_name, container_spec

    try:
        expected: Optional[str] = container_spec(store.fleet, device).config_hash()
    except FleetConfigError:
        expected = None  # the broker password is part of the hash; without it we cannot tell
    row: Dict[str, Any] = {
        "id": device.id,
        "role": device.role,
        "container": container_name(device.id),
        "state": None,
        "image": None,
        "config_hash": None,
        "expected_hash": expected,
        "hash_match": None,
        "started_at": None,
        "error": None,
    }
    try:
        with Engine.connect(device.docker, device=device.id, tls_dir=device.docker_tls, timeout=timeout) as engine:
            current = engine.container(container_name(device.id))
    except DeployError as exc:
        row.update(state="unreachable", error=str(exc))
        return row
    if current is None:
        row["state"] = "absent"
        return row
    running_hash = current.labels.get("splitinfer.config-hash")
    row.update(
        state=current.status,
        image=current.image,
        config_hash=running_hash,
        hash_match=None if expected is None else running_hash == expected,
        started_at=current.started_at or None,
        exit_code=current.exit_code,
        restart_count=current.restart_count,
    )
    return row


def _view(fleet: str, rows: List[Dict[str, Any]]) -> Any:
    """The table, then why the coordinator chose each head's cut (when it said)."""
    from rich.console import Group
    from rich.text import Text

    reasons = [Text(f"{r['id']}: {r['mqtt']['reason']}") for r in rows if r.get("mqtt") and r["mqtt"].get("reason")]
    return Group(_table(fleet, rows), *reasons) if reasons else _table(fleet, rows)


def _table(fleet: str, rows: List[Dict[str, Any]]) -> Table:
    table = Table(
        title=f"fleet {fleet}",
        title_justify="left",
        caption="mqtt columns: the nodes' state, assignment and metrics topics (p50: head compute on heads, "
        "end to end on tails)",
        caption_justify="left",
    )
    table.add_column("device", no_wrap=True, min_width=8)
    table.add_column("role")
    table.add_column("state", no_wrap=True, min_width=11)
    table.add_column("image", overflow="ellipsis")
    table.add_column("config")
    table.add_column("started", no_wrap=True)
    for column in ("cut (deployed)", *_MQTT_COLUMNS):
        table.add_column(column, overflow="ellipsis")
    colours = {"running": "green", "absent": "dim", "unreachable": "red"}
    for row in rows:
        state = row["state"]
        shown = f"[{colours.get(state, 'yellow')}]{state}[/]"
        config = {True: "[green]current[/]", False: "[yellow]stale[/]", None: "—"}[row["hash_match"]]
        mqtt: Optional[Dict[str, Any]] = row["mqtt"]
        live = (
            ["—"] * len(_MQTT_COLUMNS)
            if mqtt is None
            else [
                str(mqtt["state"]),
                str(mqtt["cut"]),
                str(mqtt["route"]),
                "—" if mqtt["fps"] is None else f"{mqtt['fps']:.1f}",
                "—" if mqtt["latency_ms"] is None else f"{mqtt['latency_ms']:.0f}",
                _pred_meas(mqtt.get("predicted_ms"), mqtt.get("measured_ms")),
                "—" if mqtt["bytes_per_frame"] is None else f"{mqtt['bytes_per_frame']:,}",
                "—" if mqtt["dropped"] is None else str(mqtt["dropped"]),
                "—" if mqtt["last_seen"] is None else f"{max(0.0, time.time() - mqtt['last_seen']):.0f} s ago",
            ]
        )
        table.add_row(
            escape(row["id"]),
            row["role"],
            shown,
            escape(row["image"] or "—"),
            config,
            escape(_short_time(row["started_at"])),
            str(row["desired_cut"] if row["desired_cut"] is not None else "—"),
            *live,
        )
    return table


def _pred_meas(predicted: Optional[float], measured: Optional[float]) -> str:
    if predicted is None and measured is None:
        return "—"
    return f"{'—' if predicted is None else f'{predicted:.0f}'} / {'—' if measured is None else f'{measured:.0f}'}"


def _short_time(value: Optional[str]) -> str:
    if not value or value.startswith("0001-"):
        return "—"
    return value.replace("T", " ")[:19]
