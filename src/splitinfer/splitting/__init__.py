"""The split part: load a YOLO model, find what crosses each cut, and run its two halves.

The package is `splitinfer.splitting` because `splitinfer.split` is the public function.
Knows nothing of MQTT, Docker or the CLI.
"""

from __future__ import annotations

from .graph import PRESETS, LayerGraph
from .model import Model, file_sha256, load_model
from .postprocess import Detections, postprocess
from .preprocess import letterbox, to_batch
from .runner import Head, Tail, layer_shapes, split
from .sensitivity import calibrate

__all__ = [
    "PRESETS",
    "Detections",
    "Head",
    "LayerGraph",
    "Model",
    "Tail",
    "calibrate",
    "file_sha256",
    "layer_shapes",
    "letterbox",
    "load_model",
    "postprocess",
    "split",
    "to_batch",
]
