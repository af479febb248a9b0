"""Loading the model an assignment names, as this node sees it: a file under the node's model folder (never a path
outside it), a checkpoint only when the assignment pins its sha256 and the file matches, and kept for the next
assignment. Configs Ultralytics ships (``yolo11n.yaml``: random weights) are the one thing not in the folder.
The codec's calibration tables an assignment names are files in the same folder, pinned the same way.
Part of the node runtime: Python 3.8.

The model folder is ``--model-dir`` / ``SPLITINFER_MODEL_DIR`` (``/models`` in deployed containers), else the
working directory. Loading never runs code from the file (:mod:`splitinfer.splitting.checkpoint`).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Tuple

from splitinfer.broker.messages import Assignment
from splitinfer.codec.table import CalibrationTable
from splitinfer.errors import CodecError, ModelError, SplitInferError
from splitinfer.splitting import load_model
from splitinfer.splitting.model import Model, file_sha256

__all__ = ["as_assigned", "load_assigned", "load_assigned_model", "load_assigned_tables", "resolve_model_path"]

_MODELS: Dict[Tuple[str, str, bool], Model] = {}
_TABLES: Dict[Tuple[str, str], CalibrationTable] = {}
CONFIG_SUFFIXES = (".yaml", ".yml")


def resolve_model_path(name: str, model_dir: str) -> str:
    """The file ``name`` (as an assignment gives it) under ``model_dir``, or a config name Ultralytics ships.
    ModelError for anything that would leave the folder (absolute paths, ``..``) or is not there."""
    folder = os.path.realpath(model_dir or os.getcwd())
    if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise ModelError(f"model {name!r}: an assignment names a file inside the model folder {folder}, "
                         "not a path outside it")
    path = os.path.realpath(os.path.join(folder, name))
    if os.path.commonpath([folder, path]) != folder:
        raise ModelError(f"model {name!r} leads outside the model folder {folder} (a link?)")
    if os.path.isfile(path):
        return path
    if name.endswith(CONFIG_SUFFIXES) and "/" not in name:
        return name  # a config Ultralytics ships (load_model says if it is not one)
    raise ModelError(f"model {name!r} is not in the model folder {folder} (deploy copies it there; or set "
                     "--model-dir / SPLITINFER_MODEL_DIR)")


def load_assigned_model(assignment: Assignment, *, model_dir: str, device: str, half: bool) -> Model:
    """The assignment's model, checked against its sha256 and cached for the next assignment. A checkpoint is
    loaded only when the assignment pins its sha256: the operator's config says which file runs here."""
    path = resolve_model_path(assignment.model, model_dir)
    key = (path, device, half)
    if key not in _MODELS:
        if not path.endswith(CONFIG_SUFFIXES):
            if not assignment.sha256:
                raise ModelError(f"{assignment.model}: the assignment gives no sha256 for this checkpoint; nodes load "
                                 "only checkpoints the operator pinned (model.sha256 in fleet.yaml, --sha256)")
            _check_pinned(path, assignment.sha256, "model")
        _MODELS[key] = load_model(path, device=device, half=half)
    return _MODELS[key]


def load_assigned_tables(assignment: Assignment, *, model_dir: str) -> List[CalibrationTable]:
    """The codec's calibration tables the assignment names, each a file in the model folder whose sha256 must be
    the assigned one; read without unpickling (:mod:`splitinfer.codec.table`) and kept for the next assignment."""
    tables = []
    for ref in assignment.tables:
        path = resolve_model_path(ref.name, model_dir)
        key = (path, ref.sha256)
        if key not in _TABLES:
            _check_pinned(path, ref.sha256, "calibration table")
            try:
                _TABLES[key] = CalibrationTable.load(path)
            except CodecError as exc:
                raise ModelError(f"{path}: not a calibration table this node can use: {exc}") from exc
        tables.append(_TABLES[key])
    return tables


def load_assigned(assignment: Assignment, *, model_dir: str, device: str, half: bool,
                  on_failure: Callable[[str], None]) -> Tuple[Model, List[CalibrationTable]]:
    """The assignment's model and calibration tables; when either cannot be loaded, ``on_failure(reason)`` (a
    node says it has failed) before the ModelError goes on."""
    try:
        model = load_assigned_model(assignment, model_dir=model_dir, device=device, half=half)
    except SplitInferError as exc:
        on_failure(f"cannot load the assigned model {assignment.model}: {exc}")
        raise
    try:
        tables = load_assigned_tables(assignment, model_dir=model_dir)
    except SplitInferError as exc:
        on_failure(f"cannot load the assigned calibration tables: {exc}")
        raise
    return model, tables


def _check_pinned(path: str, expected: str, what: str) -> None:
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the assigned {what} ({exc})") from exc
    if actual != expected:
        raise ModelError(f"{path}: sha256 {actual[:12]}… differs from the assigned {expected[:12]}…")


def as_assigned(model: str) -> Tuple[str, str, str]:
    """How a system on one machine assigns a model file it was given: (model folder for the nodes, the name
    inside it, its sha256). A config name Ultralytics ships stays a name, with no folder and no digest."""
    if os.path.isfile(model):
        path = os.path.realpath(model)
        digest = "" if path.endswith(CONFIG_SUFFIXES) else file_sha256(path)
        return os.path.dirname(path), os.path.basename(path), digest
    return "", model, ""
