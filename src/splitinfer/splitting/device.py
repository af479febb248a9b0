"""Which torch device a model runs on, and whether it can run there in half precision.

``auto`` (the nodes' default) is the first CUDA device when torch sees one, else the CPU. fp16 is allowed where
the device computes it: on CUDA, and on the CPU only where this torch has fp16 convolution (torch 1.11, the
Jetson image's, has none: "slow_conv2d_cpu" not implemented for 'Half'). Part of the node runtime: Python 3.8.
"""

from __future__ import annotations

import re
from typing import Dict, Optional

from splitinfer.errors import ModelError

__all__ = ["DEVICE_CHOICES", "check_half", "half_unsupported", "resolve_device"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_HALF_PROBES: Dict[str, Optional[str]] = {}


def resolve_device(spec: str = "auto") -> str:
    """``auto`` → ``cuda:0`` when torch sees a GPU, else ``cpu``; ``cuda`` → ``cuda:<current>``; ``cuda:N`` and
    ``cpu`` as given, once checked. ModelError says why a device cannot be had."""
    text = (spec or "auto").strip().lower()
    if not _DEVICE.match(text):
        raise ModelError(f"unknown device {spec!r}: expected {DEVICE_CHOICES}")
    if text == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if text == "auto":
        text = "cuda" if available else "cpu"
        if text == "cpu":
            return "cpu"
    if not available:
        raise ModelError(f"device {spec!r} asked for, but {_no_cuda_reason(torch)}")
    index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelError(f"device {spec!r} asked for, but torch sees {count} CUDA device(s) (cuda:0..{count - 1})")
    return f"cuda:{index}"


def _no_cuda_reason(torch: object) -> str:
    version = getattr(torch, "__version__", "?")
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    if not cuda:
        return f"this torch {version} is a CPU-only build (install the device's CUDA build of torch)"
    return (f"torch {version} (CUDA {cuda}) sees no GPU: in a container the GPU must be passed in "
            "(runtime: nvidia on a Jetson, gpus: all on an x86 server)")


def half_unsupported(device: str) -> Optional[str]:
    """Why fp16 cannot run on ``device`` (a resolved device: ``cpu``, ``cuda:0``), or None when it can.

    CUDA computes fp16; on the CPU a one-pixel fp16 convolution tells whether this torch implements it (the answer
    is cached per device)."""
    if device.startswith("cuda"):
        return None
    if device not in _HALF_PROBES:
        _HALF_PROBES[device] = _probe_half(device)
    return _HALF_PROBES[device]


def _probe_half(device: str) -> Optional[str]:
    import torch

    try:
        with torch.no_grad():
            x = torch.zeros(1, 1, 3, 3, dtype=torch.float16, device=device)
            torch.nn.functional.conv2d(x, torch.zeros(1, 1, 3, 3, dtype=torch.float16, device=device))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"torch {torch.__version__} has no fp16 convolution on {device} ({first})"
    return None


def check_half(device: str) -> None:
    """ModelError when ``half`` cannot run on ``device``: say so before loading anything."""
    reason = half_unsupported(device)
    if reason is not None:
        raise ModelError(f"half precision (--half) is not available here: {reason}; run on a CUDA device "
                         "or without --half")
