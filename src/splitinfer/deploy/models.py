"""Model distribution: the fleet's model file (and the codec's calibration tables fleet.yaml names) copied from
the operator's machine into each device's model volume, over the Docker API, only when its digest differs.

Each device's engine holds two named volumes per fleet: ``splitinfer-<fleet>-models``, mounted read-only at
``/models`` in the node containers (``SPLITINFER_MODEL_DIR``), and ``splitinfer-<fleet>-cache``, mounted at
``/cache`` (``SPLITINFER_CACHE``: per-layer profiles survive a recreated container).

A copy goes through a short-lived container that is created, never started, with the model volume mounted
read-write: the file goes in with the Engine API's archive upload (so ``ssh://`` and ``tcp://`` engines work like
the local one), is read back and hashed, and only then is ``<file>.sha256`` written next to it. The marker is
emptied first, so an interrupted copy is copied again on the next deploy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, List, Optional, Tuple

from splitinfer.errors import DeployError, FleetConfigError
from splitinfer.fleet.schema import Fleet

from .engine import Engine
from .spec import LABEL_DEVICE, LABEL_FLEET, ContainerSpec

__all__ = ["CACHE_DIR", "MODEL_DIR", "ModelFile", "cache_volume", "model_files", "models_volume", "sync_models"]

MODEL_DIR = "/models"
CACHE_DIR = "/cache"
HELPER_LABEL = "splitinfer.helper"


def models_volume(fleet: str) -> str:
    return f"splitinfer-{fleet}-models"


def cache_volume(fleet: str) -> str:
    return f"splitinfer-{fleet}-cache"


@dataclass(frozen=True)
class ModelFile:
    """A file to put in the model volume: ``name`` there, ``path`` on the operator's machine, its ``sha256``."""

    name: str
    path: Path
    sha256: str

    def to_json(self) -> dict:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256}


def sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def model_files(fleet: Fleet, base_dir: Path, *, fleet_file: Optional[str] = None) -> Tuple[ModelFile, ...]:
    """The files deploy copies to every device: ``model.path`` when it is a file here (a ``.pt`` must be, and its
    ``model.sha256`` must match), and each of ``model.tables`` (its ``sha256`` must match). Paths are relative to
    the fleet file's folder.

    A ``.yaml`` that is not a file here names a config Ultralytics ships (nothing to copy); ``model.name`` too.
    """
    spec = fleet.model
    if spec is None:
        return ()
    files: List[ModelFile] = []
    if spec.path:
        path = (base_dir / spec.path).expanduser()
        if path.suffix.lower() == ".pt" or path.is_file():
            files.append(_checked_model(path, spec.sha256, fleet_file))
    for i, entry in enumerate(spec.tables):
        files.append(_checked_table(base_dir, entry.path, entry.sha256, fleet_file, f"model.tables[{i}]"))
    return tuple(files)


def _checked_model(path: Path, expected: Optional[str], fleet_file: Optional[str]) -> ModelFile:
    if not path.is_file():
        raise FleetConfigError(f"{path}: file not found (model.path names a file on this machine, which deploy "
                               "copies to every device)", path=fleet_file, field="model.path")
    digest = _file_digest(path)
    if path.suffix.lower() == ".pt":
        if expected is None:
            raise FleetConfigError(f'required to distribute {path.name} (nodes refuse any other file); add under '
                                   f'model:   sha256: "{digest}"', path=fleet_file, field="model.sha256")
        if expected != digest:
            raise FleetConfigError(f"{expected} is not the digest of {path} ({digest}); if the file changed on "
                                   f'purpose, put   sha256: "{digest}"', path=fleet_file, field="model.sha256")
    return ModelFile(path.name, path, digest)


def _checked_table(base_dir: Path, name: str, expected: str, fleet_file: Optional[str], where: str) -> ModelFile:
    path = (base_dir / name).expanduser()
    if not path.is_file():
        raise FleetConfigError(f"{path}: file not found (a file on this machine, which deploy copies to every "
                               "device)", path=fleet_file, field=f"{where}.path")
    digest = _file_digest(path)
    if digest != expected:
        raise FleetConfigError(f"{expected} is not the digest of {path} ({digest}); if the table changed on purpose "
                               f'(calibrated again), put   sha256: "{digest}"', path=fleet_file,
                               field=f"{where}.sha256")
    return ModelFile(path.name, path, digest)


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_of(handle)


def helper_spec(fleet: str, device: str, image: str) -> ContainerSpec:
    """The container a copy goes through: created, never started, the model volume mounted read-write."""
    return ContainerSpec(
        name=f"splitinfer-{device}-models",
        image=image,
        command=("true",),
        labels={LABEL_FLEET: fleet, LABEL_DEVICE: device, HELPER_LABEL: "models"},
        volumes=(f"{models_volume(fleet)}:{MODEL_DIR}:rw",),
        network_mode="none",
        restart_policy="no",
        init=False,
    )


def sync_models(engine: Engine, helper: ContainerSpec, files: Tuple[ModelFile, ...]) -> List[str]:
    """Copy each file whose marker on the device differs from its digest; returns the names copied.

    DeployError when a copy reads back with another digest (nothing is marked, so the next deploy copies again).
    """
    if not files:
        return []
    leftover = engine.container(helper.name)
    if leftover is not None:
        if leftover.labels.get(HELPER_LABEL) != "models":
            raise DeployError(f"a container named {helper.name} is in the way of the model copy and is not ours; "
                              "rename or remove it", device=engine.device)
        engine.remove(leftover.id)  # a leftover from an interrupted deploy
    container = engine.create(helper)
    copied = []
    try:
        for item in files:
            target = f"{MODEL_DIR}/{item.name}"
            marker = f"{target}.sha256"
            current = engine.read_file(container, marker)
            if current is not None and current.decode(errors="replace").strip() == item.sha256:
                continue
            engine.put_files(container, {marker: (b"", 0o644), target: (item.path, 0o644)})
            landed = engine.file_sha256(container, target)
            if landed != item.sha256:
                raise DeployError(f"{item.name} reached the model volume with sha256 {landed} instead of "
                                  f"{item.sha256}; deploy again", device=engine.device)
            engine.put_files(container, {marker: (f"{item.sha256}\n".encode(), 0o644)})
            copied.append(item.name)
    finally:
        engine.remove(container)
    return copied
