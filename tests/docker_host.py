"""Fixtures for the Docker integration tests: a private dockerd and a node image built without pulling.

``dockerd`` starts Debian's Docker engine (20.10) on a socket of its own under /tmp, with its own data and
exec roots, no default bridge and no iptables rules (the containers use the host network), and stops it after
the session. Without dockerd (or root) the docker tests are skipped with the reason, except in CI (``CI=true``),
where that is a failure.

``node_image`` is the package's own no-registry node image (:func:`splitinfer.deploy.build_node_image`, what
``splitctl image build`` makes): ``docker import`` of a root filesystem made from busybox-static. Containers from
it run this machine's Python by mounting, read-only, /usr, /lib, /lib64, the Python environment and the
repository's src; :func:`node_mounts` and :func:`node_env` give the fleet.yaml fields that do that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from splitinfer.deploy.image import host_python

NODE_IMAGE = "splitinfer-test-node:busybox"


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


@pytest.fixture(scope="session")
def node_image(dockerd: str) -> str:
    """The node image on the private engine (imported, never pulled), as `splitctl image build` makes it."""
    from splitinfer.deploy import Engine, build_node_image

    with Engine.connect(dockerd, timeout=60) as engine:
        build_node_image(engine, NODE_IMAGE)
    return NODE_IMAGE


def node_mounts() -> List[str]:
    return list(host_python().volumes)


def node_env() -> Dict[str, str]:
    return dict(host_python().env)
