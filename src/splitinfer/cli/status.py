"""``splitctl status``: every device's container, from its Docker engine, plus the live MQTT view when present.

The default table fits 80 columns (device, role, state, cut, fps, p50, drops, last seen, health); ``--wide``
adds the rest; ``--json`` has everything, with null for what is unknown.
"""

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

SILENT_AFTER = 10.0
"""Seconds without metrics (nodes publish every 2 s) after which an online node counts as silent."""
DROPPING_ABOVE = 0.05
"""The share of frames dropped above which a node's health reads ``dropping``."""
HEALTH_COLOURS = {"ok": "green", "running": "green", "absent": "dim", "stale": "yellow", "dropping": "yellow",
                  "restarted": "yellow", "silent": "yellow", "stopped": "yellow"}


def status(
    file: FleetFile = Path("fleet.yaml"),
    as_json: Json = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column: image, config, started, restarts, "
                                                            "route, mode, torch device, e2e, bytes/frame.")] = False,
    timeout: Timeout = 5.0,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between redraws with --watch.")] = 2.0,
) -> None:
    """Show each device: role, container state, the cut in use, fps, p50 latency, drops, when its metrics were
    last seen, and one word of health (ok, failed, offline, silent, dropping, stale, restarted, stopped, absent,
    unreachable). --wide adds the node's own state, image, config hash match, start time, restarts, route,
    mode, torch device, predicted/measured end to end, bytes per frame, and why the coordinator chose each cut;
    --json everything.

    The live columns are empty ("—") when the fleet's broker cannot be reached or a device never reported. Exit
    status 0 even when an engine is unreachable (its row says so); use `splitctl fleet check` in scripts.
    """
    from splitinfer.deploy import DeployState, runtime_hooks, state_path
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    fleet = store.fleet
    hooks = runtime_hooks(fleet, timeout=min(timeout, 3.0))
    if hooks.note and not as_json:
        err_console.print(f"[yellow]note:[/] {escape(hooks.note)}")

    def rows() -> List[Dict[str, Any]]:
        return _rows(store, DeployState.load(state_path(store.path)), hooks.status, timeout)

    try:
        if not watch:
            if as_json:
                print_json({"fleet": fleet.fleet, "devices": rows()})
            else:
                _print(fleet.fleet, rows(), wide=wide)
            return
        from contextlib import nullcontext

        from rich.live import Live

        # on a terminal the table redraws in place; piped, each round is printed after the last
        with Live(console=console, auto_refresh=False) if console.is_terminal else nullcontext() as live:
            while True:
                if hooks.status is not None:
                    hooks.status.refresh()  # type: ignore[attr-defined]
                current = rows()
                if live is not None:
                    live.update(_view(fleet.fleet, current, wide=wide), refresh=True)
                else:
                    _print(fleet.fleet, current, wide=wide)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        hooks.close()


def _rows(store: "FleetStore", state: Any, source: Any, timeout: float) -> List[Dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(store.fleet.devices)))) as pool:
        rows = list(pool.map(lambda d: _row(store, d, timeout), store.fleet.devices))
    now = time.time()
    for row in rows:
        assignment = state.device(row["id"]).get("assignment")
        row["desired_cut"] = assignment.get("cut") if isinstance(assignment, dict) else None
        live = source.device_status(row["id"]) if source else None
        row["mqtt"] = None if live is None else {
            "state": live.state,
            "cut": live.cut,
            "route": live.route,
            "mode": live.mode,
            "device": live.device,
            "fps": live.fps,
            "latency_ms": live.latency_ms,
            "bytes_per_frame": live.bytes_per_frame,
            "dropped": live.dropped,
            "last_seen": live.last_seen,
            "predicted_ms": live.predicted_ms,
            "measured_ms": live.measured_ms,
            "reason": live.reason,
            "failure": live.failure,
            "drop_ratio": live.drop_ratio,
        }
        row["health"] = health(row, broker=source is not None, now=now)
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
        "exit_code": None,
        "restart_count": None,
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


def health(row: Dict[str, Any], *, broker: bool, now: float) -> str:
    """One word for a row: the worst of what the engine and the node's topics say.

    unreachable, absent (no container), failed (the node says so, or the container exited with an error),
    restarting, stopped, offline (the node is not online on a reachable broker), silent (online without metrics
    for SILENT_AFTER s), dropping (more than DROPPING_ABOVE of its frames), stale (the container's config is not
    fleet.yaml's), restarted (running, after Docker restarted it), ok; without a broker, a running container is
    just ``running``.
    """
    state, mqtt = row["state"], row.get("mqtt") or {}
    if state in ("unreachable", "absent"):
        return str(state)
    if mqtt.get("state") == "failed" or mqtt.get("failure"):
        return "failed"
    if state in ("exited", "dead"):
        return "failed" if row.get("exit_code") else "stopped"
    if state in ("restarting",):
        return "restarting"
    if state != "running":
        return "stopped"
    if not broker:
        return "running"
    if mqtt.get("state") != "online":
        return "offline"
    seen = mqtt.get("last_seen")
    if seen is None or now - seen > SILENT_AFTER:
        return "silent"
    if (mqtt.get("drop_ratio") or 0.0) > DROPPING_ABOVE:
        return "dropping"
    if row.get("hash_match") is False:
        return "stale"
    if row.get("restart_count"):
        return "restarted"
    return "ok"


# ---- the tables ---------------------------------------------------------------------------------------------


def _print(fleet: str, rows: List[Dict[str, Any]], *, wide: bool) -> None:
    if not wide:
        console.print(_view(fleet, rows, wide=False))
        return
    from rich.console import Console
    from rich.measure import Measurement

    # the wide table at its natural width, like `kubectl get -o wide`: long lines, never squeezed headers
    table = _wide_table(fleet, rows)
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(console.width, needed), force_terminal=console.is_terminal, no_color=console.no_color,
            file=console.file).print(table)
    for line in _notes(rows, wide=True):
        console.print(line)


def _view(fleet: str, rows: List[Dict[str, Any]], *, wide: bool) -> Any:
    """The table, then (wide) why the coordinator chose each head's cut, and (always) why a node failed."""
    from rich.console import Group

    lines = _notes(rows, wide=wide)
    table = _wide_table(fleet, rows) if wide else _table(fleet, rows)
    return Group(table, *lines) if lines else table


def _notes(rows: List[Dict[str, Any]], *, wide: bool) -> List[Any]:
    from rich.text import Text

    lines = []
    for row in rows:
        mqtt = row.get("mqtt") or {}
        if mqtt.get("failure"):
            lines.append(Text(f"{row['id']} failed: {mqtt['failure']}", style="red"))
        if wide and mqtt.get("reason"):
            lines.append(Text(f"{row['id']}: {mqtt['reason']}"))
    return lines


def _table(fleet: str, rows: List[Dict[str, Any]]) -> Table:
    """Fits 80 columns: 62 characters of content at most, two spaces between columns."""
    table = Table(title=f"fleet {escape(fleet)}", title_justify="left", box=None, pad_edge=False,
                  header_style="bold", caption_justify="left",
                  caption="--wide for image, config, restarts, route, mode, e2e; p50: head compute on heads, end to "
                  "end on tails")
    table.add_column("device", overflow="fold")  # the one column that gives way: a long id folds, whole
    table.add_column("role", no_wrap=True)
    table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=10)
    for column in ("cut", "fps", "p50 ms", "drops"):
        table.add_column(column, no_wrap=True, justify="right", overflow="ellipsis", max_width=8)
    table.add_column("seen", no_wrap=True, justify="right")
    table.add_column("health", no_wrap=True)
    for row in rows:
        mqtt = row.get("mqtt") or {}
        table.add_row(escape(row["id"]), row["role"], _state(row), escape(_cut(row)), _fps(mqtt.get("fps")),
                      _ms(mqtt.get("latency_ms")), _dash(mqtt.get("dropped")), _ago(mqtt.get("last_seen")),
                      _health(row["health"]))
    return table


def _wide_table(fleet: str, rows: List[Dict[str, Any]]) -> Table:
    table = Table(title=f"fleet {escape(fleet)}", title_justify="left", box=None, pad_edge=False,
                  header_style="bold", caption_justify="left",
                  caption="p50: head compute on heads, end to end on tails; e2e: the coordinator's prediction / the "
                  "tail's measurement (ms)")
    columns = ("device", "role", "state", "node", "health", "image", "config", "started", "restarts", "cut (deployed)",
               "live cut", "mode", "route", "torch", "fps", "p50 ms", "e2e pred/meas", "bytes/frame", "drops",
               "seen")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        mqtt = row.get("mqtt") or {}
        config = {True: "[green]current[/]", False: "[yellow]stale[/]", None: "—"}[row["hash_match"]]
        table.add_row(
            escape(row["id"]), row["role"], _state(row), escape(_dash(mqtt.get("state"))), _health(row["health"]),
            escape(row["image"] or "—"), config,
            escape(_short_time(row["started_at"])), _dash(row.get("restart_count")), escape(_dash(row["desired_cut"])),
            escape(_dash(mqtt.get("cut"))), escape(_dash(mqtt.get("mode"))), escape(_dash(mqtt.get("route"))),
            escape(_dash(mqtt.get("device"))), _fps(mqtt.get("fps")), _ms(mqtt.get("latency_ms")),
            _pred_meas(mqtt.get("predicted_ms"), mqtt.get("measured_ms")), _bytes(mqtt.get("bytes_per_frame")),
            _dash(mqtt.get("dropped")), _ago(mqtt.get("last_seen")),
        )
    return table


def _state(row: Dict[str, Any]) -> str:
    state = row["state"]
    if state in ("unreachable", "absent"):
        return "—"  # the health column says which
    colour = "green" if state == "running" else "yellow"
    return f"[{colour}]{escape(str(state))}[/]"


def _health(word: str) -> str:
    return f"[{HEALTH_COLOURS.get(word, 'red')}]{word}[/]"


def _cut(row: Dict[str, Any]) -> str:
    """The cut in use when the node says, else the one the last deploy asked for."""
    mqtt = row.get("mqtt") or {}
    return _dash(mqtt.get("cut") if mqtt.get("cut") is not None else row.get("desired_cut"))


def _dash(value: Any) -> str:
    return "—" if value is None else str(value)


def _fps(value: Optional[float]) -> str:
    """Two significant digits below 1 fps (0.3, 0.04), one decimal below 100."""
    if value is None:
        return "—"
    if value == 0 or value >= 100:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _bytes(value: Optional[int]) -> str:
    return "—" if value is None else f"{value:,}"


def _ago(when: Optional[float]) -> str:
    if when is None:
        return "—"
    seconds = max(0.0, time.time() - when)
    if seconds < 60:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.0f}h"


def _pred_meas(predicted: Optional[float], measured: Optional[float]) -> str:
    if predicted is None and measured is None:
        return "—"
    return f"{_ms(predicted)} / {_ms(measured)}"


def _short_time(value: Optional[str]) -> str:
    if not value or value.startswith("0001-"):
        return "—"
    return value.replace("T", " ")[:19]
