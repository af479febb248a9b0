"""Loading Ultralytics detection models (.pt checkpoints or .yaml configs) for splitting."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from splitinfer.errors import ModelError

from .device import check_half, resolve_device
from .graph import LayerGraph

if TYPE_CHECKING:
    import torch

__all__ = ["Model", "file_sha256", "load_model"]


def file_sha256(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """An Ultralytics ``DetectionModel`` in eval mode, with what splitting needs to know about it.

    ``fingerprint`` identifies the weights (sha256 of the checkpoint, or of the config plus seed), so a tail can
    refuse features made by a different model. Calling the model runs it whole, exactly as Ultralytics does.
    """

    def __init__(self, net: torch.nn.Module, *, fingerprint: str, source: str) -> None:
        layers = getattr(net, "model", None)
        if layers is None or not all(hasattr(m, "f") for m in layers):
            raise ModelError(f"{source}: not an Ultralytics layer-graph model (no .model layers with .f)")
        if type(layers[-1]).__name__ not in ("Detect", "v10Detect", "YOLOEDetect", "WorldDetect"):
            raise ModelError(f"{source}: last layer is {type(layers[-1]).__name__}, not a detection head; "
                             "only detection models can be split today")
        self.net = net
        self.fingerprint = fingerprint
        self.source = source
        self.graph = LayerGraph.from_froms([m.f for m in layers], [type(m).__name__ for m in layers])

    @property
    def layers(self) -> Any:
        return self.net.model

    @property
    def names(self) -> Dict[int, str]:
        return dict(getattr(self.net, "names", {}) or {})

    @property
    def stride(self) -> int:
        return int(max(getattr(self.net, "stride", [32])))

    @property
    def end2end(self) -> bool:
        """YOLO26-style NMS-free output (one box per object, no NMS needed)."""
        return bool(getattr(self.net, "end2end", False))

    @property
    def family(self) -> str:
        types = set(self.graph.types)
        if "C2PSA" in types:
            return "yolo26" if hasattr(self.layers[-1], "one2one_cv2") else "yolo11"
        if "C2f" in types:
            return "yolov8"
        return "yolo"

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def __call__(self, x: torch.Tensor) -> Any:
        import torch

        with torch.no_grad():
            return self.net(x)

    def __repr__(self) -> str:
        return f"Model({self.source!r}, family={self.family}, layers={self.graph.num_layers})"


def load_model(
    path: Union[str, Path, Model, Any],
    *,
    device: str = "cpu",
    half: bool = False,
    fuse: bool = True,
    seed: int = 0,
    end2end: Optional[bool] = None,
) -> Model:
    """Load a detection model from a ``.pt`` checkpoint or a ``.yaml`` config, ready for :func:`split`.

    A ``.yaml`` config (a file, or a name Ultralytics ships such as ``yolo11n.yaml``) gets random weights drawn
    from ``seed``, so separate processes build the same model. ``.pt`` files are the operator's own choice and
    are loaded with Ultralytics' loader (never bytes from the network). Weights are never downloaded here.
    ``fuse`` folds BatchNorm into convolutions, as Ultralytics does for inference. ``end2end`` selects a
    YOLO26-style one-to-one (NMS-free) head where the model has one; ``None`` keeps the model's own choice.
    ``device`` is ``auto`` (CUDA when torch sees it, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; ``half``
    is refused (ModelError) where the device has no fp16 convolution, e.g. the CPU under torch 1.11.
    """
    import torch

    if isinstance(path, Model):
        return path
    dev = resolve_device(device)  # before loading: a wrong device or fp16 where there is none fails fast
    if half:
        check_half(dev)
    if isinstance(path, torch.nn.Module):
        net, fingerprint, source = path, _module_fingerprint(path), type(path).__name__
    else:
        source = str(path)
        suffix = Path(source).suffix.lower()
        if suffix in (".yaml", ".yml"):
            net, fingerprint = _from_yaml(source, seed)
        elif suffix == ".pt":
            net, fingerprint = _from_checkpoint(source)
        else:
            raise ModelError(f"{source}: expected a .pt checkpoint or a .yaml config")
    net = net.float().eval()
    if end2end is not None:
        if end2end and getattr(net.model[-1], "one2one_cv2", None) is None:  # type: ignore[index]
            raise ModelError(f"{source}: end2end asked for, but this model has no one-to-one head")
        net.end2end = end2end  # type: ignore[assignment]  # before fusing, which drops the unused head
    if fuse and hasattr(net, "fuse"):
        net = net.fuse(verbose=False)  # type: ignore[operator]
    net = net.to(torch.device(dev))
    if half:
        net = net.half()
    for p in net.parameters():
        p.requires_grad_(False)
    return Model(net, fingerprint=fingerprint, source=source)


def _from_yaml(source: str, seed: int) -> Any:
    import torch
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    try:
        cfg = yaml_model_load(source)  # a file, or a name Ultralytics ships ("yolo11n.yaml" = yolo11.yaml, scale n)
    except Exception as exc:  # Ultralytics raises FileNotFoundError, YAML errors and bare Exceptions here
        if os.path.isfile(source):
            raise ModelError(f"{source}: not a readable model config: {_first_line(exc)}") from exc
        raise ModelError(f"{source}: config not found, neither a file nor a config Ultralytics ships") from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            net = DetectionModel(cfg, verbose=False)
        except Exception as exc:
            raise ModelError(f"{source}: Ultralytics could not build this config: {exc}") from exc
    canonical = json.dumps(cfg, sort_keys=True, default=str).encode()
    fingerprint = hashlib.sha256(canonical + b"\0seed=%d" % seed).hexdigest()
    return net, fingerprint


def _from_checkpoint(source: str) -> Any:
    if not os.path.isfile(source):
        raise ModelError(f"{source}: model file not found (weights are not downloaded; pass a local .pt, "
                         "or a .yaml config for random weights)")
    from .checkpoint import load_checkpoint

    return load_checkpoint(source), file_sha256(source)


def _first_line(exc: BaseException) -> str:
    """Ultralytics' messages run on with advice to download weights; the first line is the cause."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _module_fingerprint(net: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def default_imgsz(model: Model, imgsz: Optional[int] = None) -> int:
    size = int(imgsz or 640)
    if size % model.stride:
        raise ModelError(f"imgsz {size} is not a multiple of the model's stride {model.stride}")
    return size
