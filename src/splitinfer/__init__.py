"""splitinfer: split inference for Ultralytics YOLO across an edge fleet.

The parts, in the order a frame meets them (docs/architecture.md has the whole picture)::

    capture → head → codec → broker → tail → detections        splitting: models, cuts, runners (both sides)
    (head/)  (head/) (codec/) (broker/) (tail/)                 node: what head and tail share
    coordinator: cuts and routes      fleet, deploy: fleet.yaml → containers      cluster: all on one machine
    bench: every benchmark            cli: splitctl

Imports point one way: cli → bench → cluster → head, tail → node → splitting, codec, broker → errors, features;
deploy → fleet, broker; coordinator → broker.

The public API is imported lazily, so ``import splitinfer`` (and ``splitctl --help``) does not pay for torch.

    >>> import splitinfer
    >>> model = splitinfer.load_model("yolo11n.yaml")
    >>> head, tail = splitinfer.split(model, "b")
    >>> blob = splitinfer.Codec(bits=4).encode(head(x))
    >>> out = tail(splitinfer.Codec().decode(blob))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "SplitInferError": "splitinfer.errors",
    "CodecError": "splitinfer.errors",
    "ModelError": "splitinfer.errors",
    "SourceError": "splitinfer.errors",
    "TransportError": "splitinfer.errors",
    "ProtocolError": "splitinfer.errors",
    "FleetConfigError": "splitinfer.errors",
    "DeployError": "splitinfer.errors",
    "ProcessError": "splitinfer.errors",
    "BenchError": "splitinfer.errors",
    "NetnsError": "splitinfer.errors",
    "CalibrationTable": "splitinfer.codec",
    "Codec": "splitinfer.codec",
    "CodecSettings": "splitinfer.codec",
    "FeatureSet": "splitinfer.features",
    "FrameMeta": "splitinfer.features",
    "Detections": "splitinfer.splitting",
    "Head": "splitinfer.splitting",
    "LayerGraph": "splitinfer.splitting",
    "Model": "splitinfer.splitting",
    "PRESETS": "splitinfer.splitting",
    "Tail": "splitinfer.splitting",
    "calibrate": "splitinfer.splitting",
    "file_sha256": "splitinfer.splitting",
    "layer_shapes": "splitinfer.splitting",
    "letterbox": "splitinfer.splitting",
    "load_model": "splitinfer.splitting",
    "postprocess": "splitinfer.splitting",
    "split": "splitinfer.splitting",
    "to_batch": "splitinfer.splitting",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'splitinfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
