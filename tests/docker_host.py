"""Fixtures for the Docker integration tests: a private dockerd and a node image built without pulling.

``dockerd`` starts Debian's Docker engine (20.10) on a socket of its own under /tmp, with its own data and
exec roots, no default bridge and no iptables rules (the containers use the host network), and stops it after
the session. Without dockerd (or root) the docker tests are skipped with the reason, except in CI (``CI=true``),
where that is a failure.

``node_image`` is ``docker import`` of a root filesystem made here from busybox-static: /bin/busybox plus
its applet links. Containers from it run this machine's Python by mounting, read-only, /usr, /lib, /lib64, the
Python environment (found from sys.prefix, sys.base_prefix and the real path of sys.executable) and the
repository's src; :func:`node_mounts` and :func:`node_env` give the fleet.yaml fields that do that.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import splitinfer

BUSYBOX_APPLETS = ("sh", "cat", "echo", "sleep", "ls", "env", "true", "false", "printf")
NODE_IMAGE = "splitinfer-test-node:busybox"
SRC = Path(splitinfer.__file__).resolve().parents[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"docker tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[str]:
    """A running Docker engine; yields its endpoint (unix://…)."""
    exe = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if exe is None:
        _unavailable("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        _unavailable("dockerd needs root")
    import docker

    root = Path(tempfile.mkdtemp(prefix="si-dockerd-", dir="/tmp"))  # short: unix socket paths max 107 bytes
    endpoint = f"unix://{root}/d.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed at teardown
    command = [
        str(exe),
        "--host",
        endpoint,
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "d.pid"),
        "--bridge",
        "none",
        "--iptables=false",
        "--ip-masq=false",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(docker, endpoint, process, root)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """dockerd leaves its default network namespace (exec/netns/default) mounted; unmount what is left."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _wait_until_up(docker: Any, endpoint: str, process: subprocess.Popen, root: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dockerd exited with {process.returncode}:\n{(root / 'dockerd.log').read_text()[-3000:]}")
        try:
            client = docker.DockerClient(base_url=endpoint, timeout=5)
            if client.ping():
                client.close()
                return
        except Exception:
            time.sleep(0.3)
    pytest.fail(f"dockerd did not answer on {endpoint} within 60 s:\n{(root / 'dockerd.log').read_text()[-3000:]}")


def busybox_rootfs() -> bytes:
    """A tar of a minimal root filesystem: /bin/busybox, its applet links, and empty mount points."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "usr", "lib", "lib64"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(os.path.realpath(busybox), arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def node_image(dockerd: str) -> str:
    """The test node image on the private engine (imported, never pulled)."""
    import docker

    client = docker.DockerClient(base_url=dockerd, timeout=60)
    repository, tag = NODE_IMAGE.split(":")
    client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    client.close()
    return NODE_IMAGE


def python_env_paths() -> List[str]:
    """Host folders holding the running Python and its packages, outermost only."""
    candidates = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parents[1])}
    paths = sorted(os.path.realpath(p) for p in candidates)
    return [p for p in paths if not any(p != q and p.startswith(q + os.sep) for q in paths)]


def node_mounts() -> List[str]:
    host = [p for p in ("/usr", "/lib", "/lib64") if os.path.exists(p)]
    return [f"{p}:{p}:ro" for p in (*host, *python_env_paths())] + [f"{SRC}:/opt/splitinfer/src:ro"]


def node_env() -> Dict[str, str]:
    python_bin = str(Path(os.path.realpath(sys.executable)).parent)
    return {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": "/opt/splitinfer/src",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
