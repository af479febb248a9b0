"""A production Mosquitto 2 setup for one fleet: mosquitto.conf, the password file and the ACL file.

    files = render_mosquitto_files("traffic-a", [("jetson-01", "head"), ("tail-01", "tail")],
                                   passwords={"jetson-01": "…", "tail-01": "…", "coordinator": "…"})
    files.write("/etc/mosquitto/splitinfer")            # or use files.conf / files.passwd / files.acl

Security model (see docs/topic-tree.md):

- anonymous access is off; each device logs in with its device id as MQTT username, so the ACL's ``%u``
  is the device id;
- every device may publish its own ``devices/<id>/{info,state,metrics,probe}`` and read its own ``devices/<id>/assign``;
- a head may publish ``features/+/<id>`` (any tail: routes change without touching the broker) and read its own
  ``detections/<id>`` (the acknowledgements by which it counts lost frames);
- a tail may read ``features/<id>/+`` and publish ``detections/+`` (any head routed to it);
- operators (the coordinator, ``splitctl``) read everything of the fleet and write ``devices/+/assign``.

Anything not granted is denied; Mosquitto drops a denied publish silently (MQTT 3.1.1 has no way to say so).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from splitinfer.broker.config import DEFAULT_MAX_PAYLOAD
from splitinfer.broker.topics import Topics, validate_id
from splitinfer.errors import FleetConfigError, TransportError

__all__ = [
    "ROLES",
    "MosquittoFiles",
    "hash_password",
    "render_acl",
    "render_conf",
    "render_mosquitto_files",
    "render_passwd",
]

ROLES = ("head", "tail")
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
SALT_BYTES = 12


@dataclass(frozen=True)
class MosquittoFiles:
    """The four files' text. ``conf`` refers to the others as ``passwd`` (devices), ``passwd-operators`` and
    ``acl`` in its directory."""

    conf: str
    passwd: str
    acl: str
    passwd_operators: str = ""

    FILES = ("mosquitto.conf", "passwd", "passwd-operators", "acl")
    SECRET = ("passwd", "passwd-operators")

    def contents(self) -> Dict[str, str]:
        return {"mosquitto.conf": self.conf, "passwd": self.passwd, "passwd-operators": self.passwd_operators,
                "acl": self.acl}

    def write(self, directory: str, *, owner: Optional[Tuple[int, int]] = None) -> Dict[str, Path]:
        """Write the files into ``directory`` (password files mode 0600, owned by ``owner`` (uid, gid) when given:
        the user Mosquitto drops to must read them); return their paths."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        paths = {name: root / name for name in self.FILES}
        for name, text in self.contents().items():
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name in self.SECRET else 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            if owner is not None:
                os.chown(paths[name], *owner)
        return paths


def render_mosquitto_files(
    fleet: str,
    devices: Sequence[Tuple[str, str]],
    passwords: Mapping[str, str],
    *,
    prefix: str = "splitinfer",
    operators: Sequence[str] = ("coordinator",),
    port: Optional[int] = 1883,
    bind_address: Optional[str] = None,
    tls_port: int = 8883,
    operator_port: Optional[int] = None,
    cafile: Optional[str] = None,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    require_certificate: bool = False,
    config_dir: str = "/mosquitto/config",
    data_dir: Optional[str] = "/mosquitto/data",
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    run_as_user: Optional[str] = None,
    hasher: str = "auto",
) -> MosquittoFiles:
    """Render the three files for ``fleet``. ``devices`` are (device id, role) pairs; ``passwords`` maps every
    device id and operator to its password. Paths inside the config (``config_dir``, ``data_dir``, TLS files)
    are as the broker will see them, e.g. inside its container. ``data_dir=None`` turns persistence off.
    ``operator_port`` (default: the device port + 1) is the operators' listener, TLS when the device one is."""
    topics = _topics(fleet, prefix)
    _users(devices, operators)
    device_ids = [d for d, _ in devices]
    return MosquittoFiles(
        conf=render_conf(
            fleet,
            port=port,
            bind_address=bind_address,
            tls_port=tls_port,
            operator_port=operator_port,
            cafile=cafile,
            certfile=certfile,
            keyfile=keyfile,
            require_certificate=require_certificate,
            config_dir=config_dir,
            data_dir=data_dir,
            max_payload=max_payload,
            run_as_user=run_as_user,
        ),
        passwd=render_passwd({user: _password(passwords, user) for user in device_ids}, hasher=hasher),
        passwd_operators=render_passwd({user: _password(passwords, user) for user in operators}, hasher=hasher),
        acl=render_acl(topics, devices, operators),
    )


# ---- mosquitto.conf -----------------------------------------------------------------------------------


def render_conf(
    fleet: str,
    *,
    port: Optional[int] = 1883,
    bind_address: Optional[str] = None,
    tls_port: int = 8883,
    operator_port: Optional[int] = None,
    cafile: Optional[str] = None,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    require_certificate: bool = False,
    config_dir: str = "/mosquitto/config",
    data_dir: Optional[str] = "/mosquitto/data",
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    run_as_user: Optional[str] = None,
) -> str:
    """mosquitto.conf: the device listener (plain on ``port``, or TLS on ``tls_port`` when ``certfile`` and
    ``keyfile`` are given; both when a port is given too) and the operator listener on ``operator_port`` (default:
    the device port + 1; TLS when the device listener is)."""
    tls = bool(certfile or keyfile)
    if tls and not (certfile and keyfile):
        raise FleetConfigError("broker TLS needs both a certificate file and a key file")
    if require_certificate and not cafile:
        raise FleetConfigError("requiring client certificates needs a CA file to check them against")
    if port is None and not tls:
        raise FleetConfigError("the broker needs a listener: give a port, or TLS certificate and key")
    main = tls_port if tls else port
    assert main is not None
    operator_port = operator_port or main + 1
    if operator_port in (port, tls_port if tls else None):
        raise FleetConfigError(f"the operator listener needs a port of its own, not {operator_port}")
    out = [
        f"# Mosquitto 2 configuration for splitinfer fleet {fleet!r}; generated by splitinfer.",
        "# Devices and operators log in on listeners of their own (security settings are per listener).",
        "per_listener_settings true",
        "",
        "# feature frames are multi-megabyte; larger publishes are dropped by the broker",
        f"message_size_limit {max_payload}",
        f"max_packet_size {max_payload + 65536}",
        "max_queued_messages 1000",
        f"max_queued_bytes {4 * max_payload}",
        "",
    ]
    if data_dir is None:
        out += ["persistence false"]
    else:  # retained info, state and assignments survive a broker restart; saved at once when they change
        out += ["persistence true", f"persistence_location {data_dir.rstrip('/')}/", "autosave_interval 1",
                "autosave_on_changes true"]
    out += ["log_dest stdout", "log_type error", "log_type warning", "log_type notice", "connection_messages true"]
    if run_as_user:
        out.append(f"user {run_as_user}")
    bind = f" {bind_address}" if bind_address else ""
    tls_lines = [*([f"cafile {cafile}"] if cafile else []), f"certfile {certfile}", f"keyfile {keyfile}",
                 "tls_version tlsv1.2", f"require_certificate {'true' if require_certificate else 'false'}"]
    device_security = ["allow_anonymous false", f"password_file {config_dir}/passwd", f"acl_file {config_dir}/acl",
                       "# a device's client id is its username: no device can take over another's session",
                       "use_username_as_clientid true"]
    if port is not None:
        out += ["", "# devices", f"listener {port}{bind}", "protocol mqtt", *device_security]
    if tls:
        out += ["", "# devices, TLS", f"listener {tls_port}{bind}", "protocol mqtt", *tls_lines, *device_security]
    out += ["", "# operators: the coordinator and splitctl (any client id, several sessions at once)",
            f"listener {operator_port}{bind}", "protocol mqtt", *(tls_lines if tls else []),
            "allow_anonymous false", f"password_file {config_dir}/passwd-operators", f"acl_file {config_dir}/acl"]
    return "\n".join(out) + "\n"


# ---- ACL ----------------------------------------------------------------------------------------------


def render_acl(topics: Topics, devices: Sequence[Tuple[str, str]], operators: Sequence[str]) -> str:
    """The ACL file: ``pattern`` lines for what every device may do on its own topics, then one ``user``
    block per device for its role, then the operators."""
    _users(devices, operators)
    root = topics.root
    out = [
        f"# Mosquitto ACL for splitinfer fleet {topics.fleet!r} (topics under {root}/); generated by splitinfer.",
        "# MQTT usernames are device ids. Anything not granted here is denied.",
        "",
        "# every user, on its own device topics (%u = username = device id)",
        f"pattern write {root}/devices/%u/info",
        f"pattern write {root}/devices/%u/state",
        f"pattern write {root}/devices/%u/metrics",
        f"pattern write {root}/devices/%u/probe",
        f"pattern read {root}/devices/%u/assign",
    ]
    for device_id, role in devices:
        out += ["", f"user {device_id}"]
        if role == "head":
            out += [
                "# head: feature frames to whichever tail it is routed to; its own detections: read as",
                "# acknowledgements, written when it runs the whole model itself (local mode)",
                f"topic write {root}/features/+/{device_id}",
                f"topic readwrite {root}/detections/{device_id}",
            ]
        else:
            out += [
                "# tail: feature frames from any head routed to it; detections for those heads",
                f"topic read {root}/features/{device_id}/+",
                f"topic write {root}/detections/+",
            ]
    for operator in operators:
        out += [
            "",
            f"user {operator}",
            "# operator: sees the whole fleet, assigns cuts and routes, sets the fleet policy",
            f"topic read {root}/#",
            f"topic write {root}/devices/+/assign",
            f"topic write {root}/coordinator/policy",
        ]
    return "\n".join(out) + "\n"


# ---- password file ------------------------------------------------------------------------------------


def hash_password(password: str, *, salt: Optional[bytes] = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's password hash: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def render_passwd(passwords: Mapping[str, str], *, hasher: str = "python") -> str:
    """The password file. ``hasher``: ``"mosquitto_passwd"`` (the tool), ``"python"`` (same format, computed
    here), or ``"auto"``: the tool if installed, else Python."""
    if hasher not in ("auto", "mosquitto_passwd", "python"):
        raise FleetConfigError(f"hasher must be 'auto', 'mosquitto_passwd' or 'python', got {hasher!r}")
    for user, password in passwords.items():
        if ":" in user or not password or "\n" in password:
            raise FleetConfigError(f"MQTT user {user!r}: the name must not contain ':' and the password must be set")
    tool = shutil.which("mosquitto_passwd") if hasher != "python" else None
    if hasher == "mosquitto_passwd" and tool is None:
        raise FleetConfigError("mosquitto_passwd is not installed (apt install mosquitto)")
    if tool:
        return _passwd_with_tool(tool, passwords)
    return "".join(f"{user}:{hash_password(password)}\n" for user, password in passwords.items())


def _passwd_with_tool(tool: str, passwords: Mapping[str, str]) -> str:
    """Hash with ``mosquitto_passwd -U`` on a plain file only we can read: passwords never appear on a command
    line (``-b`` would show them to every local user's ``ps``)."""
    if not passwords:
        return ""
    with tempfile.TemporaryDirectory(prefix="splitinfer-passwd-") as tmp:
        path = Path(tmp) / "passwd"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{user}:{password}\n" for user, password in passwords.items())
        result = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            raise FleetConfigError(f"mosquitto_passwd failed: {result.stderr.strip()}")
        return path.read_text()


# ---- input checks -------------------------------------------------------------------------------------


def _topics(fleet: str, prefix: str) -> Topics:
    try:
        return Topics(fleet, prefix)
    except TransportError as exc:
        raise FleetConfigError(str(exc)) from None


def _users(devices: Sequence[Tuple[str, str]], operators: Sequence[str]) -> List[str]:
    users: List[str] = []
    for i, (device_id, role) in enumerate(devices):
        try:
            validate_id(device_id)
        except TransportError as exc:
            raise FleetConfigError(str(exc), field=f"devices[{i}].id") from None
        if role not in ROLES:
            raise FleetConfigError(f"expected 'head' or 'tail', got {role!r}", field=f"devices[{i}].role")
        users.append(device_id)
    for operator in operators:
        try:
            validate_id(operator, "operator user")
        except TransportError as exc:
            raise FleetConfigError(str(exc)) from None
        users.append(operator)
    duplicates = sorted({u for u in users if users.count(u) > 1})
    if duplicates:
        raise FleetConfigError(f"MQTT users must be unique; used twice: {', '.join(duplicates)}")
    return users


def _password(passwords: Mapping[str, str], user: str) -> str:
    if not passwords.get(user):
        raise FleetConfigError(f"no MQTT password given for user {user!r}")
    return passwords[user]
