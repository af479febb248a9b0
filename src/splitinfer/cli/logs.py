"""``splitctl logs``: a device's container output, line by line, from its Docker engine."""

# No ``from __future__ import annotations`` here: on Python < 3.10 (the Jetson image runs 3.8) Typer reads
# parameter annotations without evaluating strings, so postponed ``Annotated[...]`` options would silently
# turn into positional arguments. Annotations below must therefore be valid Python 3.8 expressions.

import sys
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from splitinfer.errors import DeployError

from ._options import Timeout, parse_since


def logs(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The device whose container to read.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", min=0, help="Only the last N lines.")] = None,
    since: Annotated[
        Optional[str], typer.Option(help="Only lines since 30s, 10m, 2h, 1d, a Unix time or ISO time.")
    ] = None,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            envvar="SPLITINFER_FLEET",
            metavar="FLEET.YAML",
            help="The fleet inventory (default ./fleet.yaml, or $SPLITINFER_FLEET).",
        ),
    ] = Path("fleet.yaml"),
    timeout: Timeout = 10.0,
) -> None:
    """Print the output (stdout and stderr) of the device's container `splitinfer-<ID>`, one line at a time."""
    from splitinfer.deploy import Engine, container_name
    from splitinfer.fleet import FleetStore

    store = FleetStore.open(file)
    try:
        device = store.fleet.device(device_id)
    except KeyError as exc:
        raise DeployError(str(exc.args[0])) from None
    name = container_name(device.id)
    with Engine.connect(device.docker, device=device.id, tls_dir=device.docker_tls, timeout=timeout) as engine:
        if engine.container(name) is None:
            raise DeployError(
                f"no container {name} on {device.docker}; deploy it with `splitctl deploy --only {device.id}`",
                device=device.id,
            )
        try:
            for line in engine.logs(name, tail=tail, since=parse_since(since), follow=follow):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
