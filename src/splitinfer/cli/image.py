"""``splitctl image build``: a node image on a machine with no registry, and what fleet.yaml needs to use it."""

# No ``from __future__ import annotations`` here: Typer on Python 3.8 needs eager annotations.

import json
import os
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

from ._console import err_console, print_json
from ._options import Json, Timeout

if TYPE_CHECKING:
    from splitinfer.deploy import HostPython

app = typer.Typer(help="Node images for a machine with no registry (real fleets: Dockerfile.jetson, "
                       "Dockerfile.tail and a registry; docs/deploying.md).", no_args_is_help=True)

ROLES = ("head", "tail")


@app.command("build")
def build(
    role: Annotated[str, typer.Argument(metavar="head|tail", help="The role the image is named for.")],
    docker: Annotated[Optional[str], typer.Option(
        help="Docker engine to build on (default: $DOCKER_HOST, else unix:///var/run/docker.sock).")] = None,
    tag: Annotated[Optional[str], typer.Option(help="Image name (default: splitinfer-<role>:host).")] = None,
    as_json: Json = False,
    timeout: Timeout = 60.0,
) -> None:
    """Build a runnable node image without pulling anything: `docker import` of a busybox root filesystem
    (apt install busybox-static) whose containers run this machine's Python, mounted read-only. Prints the
    fleet.yaml lines that use it: the image name and, for each device of that role, the volumes (and the
    environment, which the image also carries).

    The image runs on this machine's engine, or on a device with the same Python at the same paths.
    """
    from splitinfer.deploy import Engine, build_node_image, host_python

    if role not in ROLES:
        raise FleetConfigError(f"expected head or tail, got {role!r}", field="ROLE")
    endpoint = docker or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    name = tag or f"splitinfer-{role}:host"
    python = host_python()
    with Engine.connect(endpoint, device="image", timeout=timeout) as engine:
        image_id = build_node_image(engine, name, python=python)
    if as_json:
        print_json({"image": name, "id": image_id, "engine": endpoint, "role": role,
                    "volumes": list(python.volumes), "env": python.env})
        return
    err_console.print(f"built [bold]{escape(name)}[/] ({image_id[:19]}) on {escape(endpoint)}: busybox plus this "
                      f"machine's Python ({escape(python.python)}), mounted read-only. In fleet.yaml:")
    print(fleet_yaml(role, name, python))


def fleet_yaml(role: str, name: str, python: "HostPython") -> str:
    """The fleet.yaml lines that use the image (the env is the image's default too, so it may be left out)."""
    lines = ["images:", f"  {role}: {name}", "devices:",
             f"  - id: …            # each {role} whose engine is this machine (or has the same paths)",
             "    volumes:"]
    lines += [f"      - {v}" for v in python.volumes]
    lines += ["    env:                # optional: the image sets these already"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in python.env.items()]  # quoted: env values are text
    return "\n".join(lines)
