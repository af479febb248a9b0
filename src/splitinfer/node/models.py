"""Loading the model an assignment names, as this node sees it: resolved under the node's model folder, checked
against the assigned sha256, and kept for the next assignment. Part of the node runtime: Python 3.8.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from splitinfer.broker.messages import Assignment
from splitinfer.errors import ModelError
from splitinfer.splitting import load_model
from splitinfer.splitting.model import Model, file_sha256

__all__ = ["load_assigned_model", "resolve_model_path"]

_MODELS: Dict[Tuple[str, str, bool], Model] = {}


def resolve_model_path(name: str, model_dir: str) -> str:
    """A model named in an assignment, as this node sees it: relative to ``model_dir`` (an absolute path: as
    given, when it exists here), else its file name in ``model_dir`` (where ``splitctl deploy`` copies the fleet's
    model, whatever its path on the operator's machine), else as given."""
    if model_dir:
        first = name if os.path.isabs(name) else os.path.join(model_dir, name)
        for candidate in (first, os.path.join(model_dir, os.path.basename(name))):
            if os.path.isfile(candidate):
                return candidate
    return name


def load_assigned_model(assignment: Assignment, *, model_dir: str, device: str, half: bool) -> Model:
    """The assignment's model, checked against its sha256 and cached for the next assignment."""
    path = resolve_model_path(assignment.model, model_dir)
    key = (path, device, half)
    if key not in _MODELS:
        if assignment.sha256 and path.endswith(".pt"):
            try:
                actual = file_sha256(path)
            except OSError as exc:
                raise ModelError(f"{path}: cannot read the assigned model ({exc})") from exc
            if actual != assignment.sha256:
                raise ModelError(f"{path}: sha256 {actual[:12]}… differs from the assigned {assignment.sha256[:12]}…")
        _MODELS[key] = load_model(path, device=device, half=half)
    return _MODELS[key]
