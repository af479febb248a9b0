"""``splitctl broker config|up``: a Mosquitto for the fleet, with one user per device and an ACL that keeps each
device to its own topics.

No ``from __future__ import annotations``: Typer on Python 3.8 needs eager annotations.
"""

import os
from pathlib import Path
from typing import Any, Optional, Tuple

import typer
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

from ._console import console, err_console
from ._options import FleetFile

app = typer.Typer(help="The fleet's MQTT broker: render its configuration, or run it here.", no_args_is_help=True)

CertOpt = Annotated[Optional[str], typer.Option(help="Server TLS file (as the broker sees it); enables mqtts.")]


def _render(file: Path, config_dir: str, data_dir: Optional[str], cafile: Optional[str], certfile: Optional[str],
            keyfile: Optional[str]) -> Tuple[Any, int]:
    from urllib.parse import urlsplit

    from splitinfer.broker.mosquitto_conf import render_mosquitto_files
    from splitinfer.fleet import FleetStore
    from splitinfer.fleet.credentials import DEFAULT_OPERATOR, derive_password, fleet_secret

    fleet = FleetStore.open(file).fleet
    secret = fleet_secret(fleet)
    if secret is None:
        raise FleetConfigError("set broker.password_env (the name of the variable holding the fleet's MQTT "
                               "secret): the broker refuses anonymous clients", path=str(file), field="broker")
    operator = fleet.broker.username or DEFAULT_OPERATOR
    users = [d.id for d in fleet.devices] + [operator]
    url = urlsplit(fleet.broker.url)
    tls = url.scheme == "mqtts"
    port = url.port or (8883 if tls else 1883)
    files = render_mosquitto_files(
        fleet.fleet, [(d.id, d.role) for d in fleet.devices],
        {u: derive_password(secret, fleet.fleet, u) for u in users}, operators=(operator,),
        port=None if tls else port, tls_port=port, cafile=cafile, certfile=certfile, keyfile=keyfile,
        config_dir=config_dir, data_dir=data_dir,
        run_as_user="root" if hasattr(os, "geteuid") and os.geteuid() == 0 else None,
    )
    return files, port


@app.command("config")
def config(
    file: FleetFile = Path("fleet.yaml"),
    out: Annotated[Path, typer.Option(help="Where to write mosquitto.conf, passwd and acl.")] = Path("broker"),
    config_dir: Annotated[str, typer.Option(help="That folder as the broker sees it (e.g. in its container).")
                          ] = "/mosquitto/config",
    data_dir: Annotated[Optional[str], typer.Option(help="Persistence folder as the broker sees it.")
                        ] = "/mosquitto/data",
    cafile: CertOpt = None,
    certfile: CertOpt = None,
    keyfile: CertOpt = None,
) -> None:
    """Render mosquitto.conf, a password file and an ACL from fleet.yaml: anonymous access off, one user per
    device (password derived from the secret in broker.password_env), each device limited to its own topics."""
    files, port = _render(file, config_dir, data_dir, cafile, certfile, keyfile)
    paths = files.write(str(out))
    for path in paths.values():
        console.print(str(path))
    err_console.print(f"listener on port {port}; mount {out} at {config_dir} and run "
                      f"`mosquitto -c {config_dir}/mosquitto.conf`")


@app.command("up")
def up(
    file: FleetFile = Path("fleet.yaml"),
    workdir: Annotated[Path, typer.Option(help="Where the rendered files and data live.")] = Path(".broker"),
) -> None:
    """Run Mosquitto here, in the foreground, with the fleet's configuration (Ctrl-C stops it)."""
    from splitinfer.broker.local import find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise FleetConfigError("mosquitto is not installed here (Debian/Ubuntu: apt install mosquitto)")
    root = workdir.resolve()
    (root / "data").mkdir(parents=True, exist_ok=True)
    files, port = _render(file, str(root), str(root / "data") + "/", None, None, None)
    files.write(str(root))
    err_console.print(f"mosquitto on port {port} with {root}/mosquitto.conf")
    os.execv(binary, [os.path.basename(binary), "-c", str(root / "mosquitto.conf")])
