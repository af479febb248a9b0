"""``splitctl broker config|up``: a Mosquitto for the fleet, with one user per device and an ACL that keeps each
device to its own topics.

No ``from __future__ import annotations``: Typer on Python 3.8 needs eager annotations.
"""

import os
from pathlib import Path
from typing import Any, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

from ._console import console, err_console
from ._options import FleetFile

app = typer.Typer(help="The fleet's MQTT broker: render its configuration, or run it here.", no_args_is_help=True)

CertOpt = Annotated[Optional[str], typer.Option(help="Server TLS file (as the broker sees it); enables mqtts.")]
BindOpt = Annotated[Optional[str], typer.Option("--bind", metavar="ADDRESS",
                                                help="Listen on this address only, e.g. 10.0.0.2 or 127.0.0.1 "
                                                     "(default: every address).")]


def _render(file: Path, config_dir: str, data_dir: Optional[str], cafile: Optional[str], certfile: Optional[str],
            keyfile: Optional[str], run_as_user: Optional[str] = None, bind: Optional[str] = None) -> Tuple[Any, int]:
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
    operator_port = urlsplit(fleet.broker.operator_endpoint()).port
    files = render_mosquitto_files(
        fleet.fleet, [(d.id, d.role) for d in fleet.devices],
        {u: derive_password(secret, fleet.fleet, u) for u in users}, operators=(operator,),
        port=None if tls else port, bind_address=bind, tls_port=port, operator_port=operator_port, cafile=cafile,
        certfile=certfile, keyfile=keyfile, config_dir=config_dir, data_dir=data_dir, run_as_user=run_as_user,
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
    bind: BindOpt = None,
) -> None:
    """Render mosquitto.conf, a password file and an ACL from fleet.yaml: anonymous access off, one user per
    device (password derived from the secret in broker.password_env), each device limited to its own topics."""
    files, port = _render(file, config_dir, data_dir, cafile, certfile, keyfile, bind=bind)
    paths = files.write(str(out))
    for path in paths.values():
        console.print(str(path))
    err_console.print(f"listeners on {bind or 'every address'}, port {port} (devices) and {_operator_port(file)} "
                      f"(operators); mount {out} at {config_dir} and run `mosquitto -c {config_dir}/mosquitto.conf`")


@app.command("up")
def up(
    file: FleetFile = Path("fleet.yaml"),
    workdir: Annotated[Path, typer.Option(help="Local run: where the rendered files and data live.")] = Path(".broker"),
    docker: Annotated[Optional[str], typer.Option(help="Run it as a container on this Docker engine instead "
                                                       "(unix://, tcp://, ssh://).")] = None,
    image: Annotated[str, typer.Option(help="Mosquitto 2 image for --docker.")] = "eclipse-mosquitto:2.0.18",
    volume: Annotated[Optional[List[str]], typer.Option(help="Extra mount for --docker, HOST:CONTAINER[:ro] "
                                                             "(repeatable).")] = None,
    user: Annotated[str, typer.Option(help="The user Mosquitto drops to (the image's own is 'mosquitto').")
                    ] = "mosquitto",
    cafile: CertOpt = None,
    certfile: CertOpt = None,
    keyfile: CertOpt = None,
    bind: BindOpt = None,
) -> None:
    """Run Mosquitto with the fleet's configuration: here in the foreground (Ctrl-C stops it), or with --docker as
    the container `splitinfer-<fleet>-broker` on that engine (host network, data in a named volume, restarted
    unless stopped; an existing one is replaced)."""
    if docker is not None:
        _up_container(file, docker, image, volume or [], user, cafile, certfile, keyfile, bind)
        return
    from splitinfer.broker.local import find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise FleetConfigError("mosquitto is not installed here (Debian/Ubuntu: apt install mosquitto)")
    root = workdir.resolve()
    (root / "data").mkdir(parents=True, exist_ok=True)
    drop_to = _unprivileged_user() if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    if drop_to is not None:
        _check_reachable(root, *drop_to)
    files, port = _render(file, str(root), str(root / "data") + "/", cafile, certfile, keyfile,
                          drop_to[0] if drop_to else None, bind=bind)
    owner = drop_to[1] if drop_to else None
    files.write(str(root), owner=owner)
    if owner is not None:
        os.chown(root / "data", *owner)
        for item in (root / "data").iterdir():
            os.chown(item, *owner)
    err_console.print(f"mosquitto on {bind or 'every address'}, port {port} (devices) and {_operator_port(file)} "
                      f"(operators), with {root}/mosquitto.conf" + (f", as user {drop_to[0]}" if drop_to else ""))
    os.execv(binary, [os.path.basename(binary), "-c", str(root / "mosquitto.conf")])


def _unprivileged_user() -> Tuple[str, Tuple[int, int]]:
    """Run as root, Mosquitto drops to this user: Debian's ``mosquitto``, else ``nobody``; never stays root."""
    import pwd

    for name in ("mosquitto", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, (entry.pw_uid, entry.pw_gid)
    raise FleetConfigError("running as root, and neither a 'mosquitto' nor a 'nobody' user exists to run the broker "
                           "as; create one, or run `splitctl broker up` as an ordinary user")


def _check_reachable(root: Path, user: str, owner: Tuple[int, int]) -> None:
    """The user Mosquitto drops to must reach ``root`` through every folder above it."""
    for folder in [root, *root.parents]:
        if not folder.exists():
            continue
        st = folder.stat()
        if not (st.st_mode & 0o001 or (st.st_uid == owner[0] and st.st_mode & 0o100)
                or (st.st_gid == owner[1] and st.st_mode & 0o010)):
            raise FleetConfigError(f"the broker runs as {user!r}, which cannot enter {folder} (mode "
                                   f"{oct(st.st_mode & 0o777)}): pick a --workdir it can reach (e.g. "
                                   f"/var/lib/splitinfer-broker), or `chmod o+x {folder}`")


def _operator_port(file: Path) -> Optional[int]:
    from urllib.parse import urlsplit

    from splitinfer.fleet import FleetStore

    return urlsplit(FleetStore.open(file).fleet.broker.operator_endpoint()).port


def _up_container(file: Path, endpoint: str, image: str, volumes: List[str], user: str, cafile: Optional[str],
                  certfile: Optional[str], keyfile: Optional[str], bind: Optional[str]) -> None:
    import time

    from splitinfer.deploy import Engine
    from splitinfer.deploy.spec import ContainerSpec
    from splitinfer.errors import DeployError
    from splitinfer.fleet import FleetStore

    fleet = FleetStore.open(file).fleet.fleet
    files, port = _render(file, "/mosquitto/config", "/mosquitto/data", cafile, certfile, keyfile, user, bind=bind)
    name = f"splitinfer-{fleet}-broker"
    spec = ContainerSpec(
        name=name, image=image, command=("/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"),
        labels={"splitinfer.fleet": fleet, "splitinfer.role": "broker"},
        volumes=(f"{name}-data:/mosquitto/data", *volumes),
    )
    owner = 1883 if user == "mosquitto" else 0  # the official image's mosquitto user
    with Engine.connect(endpoint, device="broker") as engine:
        engine.ensure_image(image)
        engine.remove(name)
        engine.wait_removed(name)
        container = engine.create(spec)
        engine.put_files(container, {
            f"/mosquitto/config/{name}": (text.encode(), 0o600 if name in files.SECRET else 0o644)
            for name, text in files.contents().items()
        }, owner=owner)
        engine.start(container)
        time.sleep(2.0)
        state = engine.container(container)
        if state is None or not state.running:
            raise DeployError(f"the broker container exited: {engine.last_lines(container)}", device="broker")
    console.print(f"{name} running on {endpoint}, {bind or 'every address'}, port {port} (devices) and "
                  f"{_operator_port(file)} (operators)")
