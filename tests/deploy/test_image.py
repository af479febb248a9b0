"""The no-registry node image: its root filesystem, and the mounts and PATH that run this machine's Python —
from a venv, the venv's own bin (where splitinfer and its dependencies are), not the base interpreter's."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from splitinfer.deploy.image import CONTAINER_SRC, host_python, node_rootfs


def test_the_root_filesystem_is_busybox_its_applets_and_a_splitctl_that_runs_python() -> None:
    with tarfile.open(fileobj=io.BytesIO(node_rootfs()), mode="r") as tar:
        members = {m.name: m for m in tar.getmembers()}
        splitctl = tar.extractfile("bin/splitctl")
        assert splitctl is not None and splitctl.read() == b'#!/bin/sh\nexec python3 -m splitinfer "$@"\n'
    assert members["bin/busybox"].isfile() and members["bin/sh"].linkname == "busybox"
    assert {"usr", "lib", "lib64", "tmp"} <= set(members) and members["tmp"].mode == 0o1777


def test_host_python_mounts_the_environment_and_the_source_read_only() -> None:
    found = host_python()
    assert all(v.endswith(":ro") for v in found.volumes)
    mounted = [v.split(":")[0] for v in found.volumes]
    prefix = str(Path(sys.prefix).resolve())
    assert any(prefix == m or prefix.startswith(m + "/") for m in mounted)
    assert any(v.split(":")[1] == CONTAINER_SRC for v in found.volumes) and found.env["PYTHONPATH"] == CONTAINER_SRC
    assert found.env["PATH"].split(":")[0] == str(Path(sys.prefix) / "bin")


@pytest.mark.slow
def test_from_a_venv_path_starts_with_the_venvs_bin_and_both_environments_are_mounted(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    script = "import json; from splitinfer.deploy.image import host_python as h; p = h(); print(json.dumps(" \
             "{'volumes': p.volumes, 'env': p.env}))"
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    found = json.loads(out.stdout)
    assert found["env"]["PATH"].split(":")[0] == str(venv / "bin")  # the venv's python3 and splitctl first
    mounted = [v.split(":")[0] for v in found["volumes"]]
    assert str(venv.resolve()) in mounted  # the venv, and the interpreter it links to
    base = Path(sys.base_prefix).resolve()
    assert any(str(base) == m or str(base).startswith(m + "/") for m in mounted)


def test_what_image_build_prints_is_a_valid_fleet_yaml_fragment() -> None:
    from ruamel.yaml import YAML

    from splitinfer.cli.image import fleet_yaml
    from splitinfer.fleet import Fleet

    python = host_python()
    text = fleet_yaml("head", "splitinfer-head:host", python).replace("id: …", "id: cam-1")
    fragment = YAML(typ="safe").load(text)
    device = {**fragment["devices"][0], "role": "head", "docker": "unix:///var/run/docker.sock", "source": "0"}
    fleet = Fleet.model_validate({"fleet": "f", "broker": {"url": "mqtt://127.0.0.1:1883"},
                                  "images": fragment["images"], "devices": [device]})
    assert fleet.images.head.name == "splitinfer-head:host"
    assert fleet.devices[0].volumes == list(python.volumes) and fleet.devices[0].env == python.env
