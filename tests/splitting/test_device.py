"""Device selection (auto → CUDA when torch sees it, else CPU) and where fp16 may run."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import splitinfer
from splitinfer.errors import ModelError
from splitinfer.splitting import device as devices
from splitinfer.splitting.device import check_half, half_unsupported, resolve_device


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend torch sees ``n`` CUDA devices (built with CUDA 10.2, as on a Jetson)."""

    def set_count(n: int, built_with: Any = "10.2") -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.version, "cuda", built_with)

    return set_count


def test_auto_is_the_cpu_without_a_gpu(gpus: Any) -> None:
    gpus(0)
    assert resolve_device("auto") == "cpu" and resolve_device("") == "cpu" and resolve_device("CPU") == "cpu"


def test_auto_and_cuda_name_the_device_when_torch_sees_one(gpus: Any) -> None:
    gpus(2)
    assert resolve_device("auto") == "cuda:0"
    assert resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ModelError, match=r"torch sees 2 CUDA device\(s\) \(cuda:0..1\)"):
        resolve_device("cuda:2")


def test_cuda_without_a_gpu_says_why(gpus: Any) -> None:
    gpus(0)
    with pytest.raises(ModelError, match="sees no GPU: in a container the GPU must be passed in"):
        resolve_device("cuda")
    gpus(0, built_with=None)
    with pytest.raises(ModelError, match="is a CPU-only build"):
        resolve_device("cuda:0")


def test_unknown_devices_are_refused() -> None:
    for spec in ("gpu", "cuda:x", "mps", "cuda:-1"):
        with pytest.raises(ModelError, match=r"unknown device .*: expected auto, cpu, cuda or cuda:N"):
            resolve_device(spec)


def test_half_runs_on_cuda_and_where_the_cpu_has_fp16_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert half_unsupported("cuda:0") is None
    monkeypatch.setitem(devices._HALF_PROBES, "cpu", "torch 1.11.0 has no fp16 convolution on cpu (…)")
    with pytest.raises(ModelError, match=r"half precision \(--half\) is not available here: torch 1.11.0 has no"):
        check_half("cpu")


def test_load_model_refuses_half_before_building_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(devices._HALF_PROBES, "cpu", "no fp16 here")
    monkeypatch.setattr("splitinfer.splitting.model._from_yaml", lambda *a: pytest.fail("model was built"))
    with pytest.raises(ModelError, match="no fp16 here; run on a CUDA device or without --half"):
        splitinfer.load_model("yolov8n.yaml", half=True)


def test_the_probe_tells_the_truth_about_this_torch() -> None:
    """Run for real: torch 1.11 (the Python 3.8 job) has no fp16 CPU convolution, torch 2.x has one."""
    reason = half_unsupported("cpu")
    if int(torch.__version__.split(".")[0]) < 2:
        assert reason is not None and "slow_conv2d_cpu" in reason and torch.__version__ in reason
        with pytest.raises(ModelError, match="slow_conv2d_cpu"):
            splitinfer.load_model("yolov8n.yaml", half=True)
    else:
        assert reason is None
