"""A node image for a machine with no registry, built the way the tests build theirs.

``docker build`` of ``Dockerfile.jetson`` or ``Dockerfile.tail`` pulls a base image, which needs a registry. Where
there is none, :func:`build_node_image` ``docker import``-s a tiny root filesystem made here — busybox (static,
Debian's ``busybox-static``) and its applet links, plus ``/bin/splitctl`` (``python3 -m splitinfer``) — and a
container from it runs *this machine's* Python: :func:`host_python` gives the read-only mounts (``/usr``,
``/lib``, ``/lib64``, the Python environment, and the splitinfer source when it is not installed in that
environment) and the environment (``PATH`` with the environment's own ``bin`` first, so ``python3`` and
``splitctl`` are the ones that have splitinfer and its dependencies), which the image also carries as its
defaults. The image therefore runs on this machine, or on one with the same files at the same paths; real fleets
use the Dockerfiles and a registry (docs/deploying.md).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from splitinfer.errors import DeployError

from .engine import Engine

__all__ = ["BUSYBOX_APPLETS", "CONTAINER_SRC", "HostPython", "build_node_image", "host_python", "node_rootfs"]

BUSYBOX_APPLETS = ("sh", "cat", "echo", "sleep", "ls", "env", "true", "false", "printf", "ps", "kill")
CONTAINER_SRC = "/opt/splitinfer/src"
"""Where the splitinfer source is mounted when it is not installed in the Python environment."""
_SPLITCTL = b'#!/bin/sh\nexec python3 -m splitinfer "$@"\n'


@dataclass(frozen=True)
class HostPython:
    """What a container from the node image needs to run this machine's Python: fleet.yaml's ``volumes`` and
    ``env`` for the device (the image carries the same ``env`` as its defaults)."""

    volumes: Tuple[str, ...]
    env: Dict[str, str]
    python: str  # the interpreter, as the container sees it


def python_env_paths() -> List[str]:
    """Host folders holding the running Python and its packages (a venv and its base interpreter), outermost
    only."""
    candidates = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parents[1])}
    paths = sorted(os.path.realpath(p) for p in candidates)
    return [p for p in paths if not any(p != q and p.startswith(q + os.sep) for q in paths)]


def _package_root() -> Path:
    import splitinfer

    return Path(splitinfer.__file__).resolve().parents[1]


def host_python(src: Optional[Path] = None) -> HostPython:
    """The mounts and environment for this machine's Python. ``src``: the folder holding the ``splitinfer``
    package (default: the one running now); mounted at :data:`CONTAINER_SRC` unless it lies inside the Python
    environment (an installed, not an editable, splitinfer)."""
    system = [p for p in ("/usr", "/lib", "/lib64") if os.path.exists(p)]
    envs = [p for p in python_env_paths() if not any(p == s or p.startswith(s + os.sep) for s in system)]
    volumes = [f"{p}:{p}:ro" for p in (*system, *envs)]
    root = (src or _package_root()).resolve()
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    if not any(str(root).startswith(os.path.realpath(p) + os.sep) for p in python_env_paths()):
        volumes.append(f"{root}:{CONTAINER_SRC}:ro")
        env["PYTHONPATH"] = CONTAINER_SRC
    # the environment's own bin first (a venv's python3 and splitctl), then the interpreter's, then the system's
    bins = [str(Path(sys.prefix) / "bin"), str(Path(os.path.realpath(sys.executable)).parent)]
    path = [*dict.fromkeys(bins), "/usr/local/bin", "/usr/bin", "/bin"]
    env["PATH"] = ":".join(path)
    return HostPython(volumes=tuple(volumes), env=env, python=str(Path(sys.prefix) / "bin" / "python3"))


def find_busybox() -> str:
    found = shutil.which("busybox") or ("/bin/busybox" if os.path.exists("/bin/busybox") else None)
    if found is None:
        raise DeployError("busybox is not installed here (Debian/Ubuntu: apt install busybox-static); it is the "
                          "node image's only file of its own", device="image")
    return os.path.realpath(found)


def node_rootfs(busybox: Optional[str] = None) -> bytes:
    """A tar of the image's root filesystem: /bin/busybox, its applet links, /bin/splitctl, and empty mount
    points."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "usr", "lib", "lib64", "opt"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox or find_busybox(), arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        info = tarfile.TarInfo("bin/splitctl")
        info.size, info.mode = len(_SPLITCTL), 0o755
        tar.addfile(info, io.BytesIO(_SPLITCTL))
    return buffer.getvalue()


def build_node_image(engine: Engine, name: str, *, python: Optional[HostPython] = None,
                     busybox: Optional[str] = None) -> str:
    """Import the node image as ``name`` on ``engine`` (replacing an older one of that name); return its id."""
    env = (python or host_python()).env
    changes = [f"ENV {key}={value}" for key, value in env.items()] + ['CMD ["splitctl", "--help"]']
    return engine.import_image(node_rootfs(busybox), name, changes=changes)
