"""Options and small helpers shared by the fleet-facing commands (fleet, deploy, status, logs)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, Union

import typer
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

__all__ = ["FleetFile", "Json", "Timeout", "format_bytes", "parse_since"]

FleetFile = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        envvar="SPLITINFER_FLEET",
        metavar="FLEET.YAML",
        help="The fleet inventory (default ./fleet.yaml, or $SPLITINFER_FLEET).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=0.5, metavar="SECONDS", help="How long to wait for each Docker engine.")
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: Optional[str], *, now: Optional[datetime] = None) -> Optional[Union[datetime, int]]:
    """``30s``, ``10m``, ``2h``, ``1d`` (ago), a Unix timestamp, or an ISO 8601 time."""
    if value is None:
        return None
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FleetConfigError(
            f"expected a duration (30s, 10m, 2h, 1d), a Unix timestamp or an ISO time, got {value!r}", field="--since"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def format_bytes(count: Optional[int]) -> str:
    if count is None:
        return "—"
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
