"""``splitctl node head|tail``: threads, device and source are settled before the node connects anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

import splitinfer
from splitinfer.cli.app import app
from splitinfer.splitting import device as devices

from .streams import both, cli_runner

runner = cli_runner()
CORES = len(os.sched_getaffinity(0))
NOWHERE = ["--broker", "mqtt://127.0.0.1:9", "--id", "n1"]  # never reached: every case fails before connecting


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands run in this process: give torch back its thread count and OMP_NUM_THREADS afterwards."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _threads_after(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(Path(splitinfer.__file__).parents[1])  # this checkout, installed or not
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.skipif(CORES < 2, reason="one core: all cores and one thread are the same")
def test_threads_0_means_every_core_even_after_ultralytics_is_imported() -> None:
    assert _threads_after("import ultralytics, torch; print(torch.get_num_threads())") == "1"  # Ultralytics' default
    setup = "from splitinfer.node.threads import set_threads; "
    used = _threads_after(setup + "n = set_threads(0); import ultralytics, torch; print(n, torch.get_num_threads())")
    assert used == f"{CORES} {CORES}"
    assert _threads_after(setup + "set_threads(1); import ultralytics, torch; print(torch.get_num_threads())") == "1"


@pytest.mark.parametrize("role", ["head", "tail"])
def test_a_device_torch_cannot_see_stops_the_node_with_the_reason(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["node", role, *NOWHERE, "--threads", "1", "--device", "cuda"])
    assert result.exit_code == 1
    assert re.search(r"error: device 'cuda' asked for, but .*(CPU-only build|sees no GPU)", both(result))
    from_env = runner.invoke(app, ["node", role, *NOWHERE, "--threads", "1"], env={"SPLITINFER_DEVICE": "cuda:1"})
    assert from_env.exit_code == 1 and "device 'cuda:1' asked for" in both(from_env)


def test_half_where_the_device_has_no_fp16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(devices._HALF_PROBES, "cpu", "torch 1.11.0 has no fp16 convolution on cpu")
    result = runner.invoke(app, ["node", "tail", *NOWHERE, "--threads", "1", "--half"])  # --device auto → cpu
    assert result.exit_code == 1
    assert "half precision (--half) is not available here: torch 1.11.0 has no fp16" in both(result)
    from_env = runner.invoke(app, ["node", "tail", *NOWHERE, "--threads", "1"], env={"SPLITINFER_HALF": "1"})
    assert from_env.exit_code == 1 and "half precision" in both(from_env)


@pytest.mark.mosquitto
def test_a_device_it_cannot_have_is_said_as_a_failed_state_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, mosquitto_broker: object) -> None:
    import json

    from splitinfer.broker.client import MqttClient
    from splitinfer.broker.config import BrokerConfig
    from splitinfer.broker.topics import Topics

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    url = mosquitto_broker.url  # type: ignore[attr-defined]
    result = runner.invoke(app, ["node", "tail", "--broker", url, "--fleet", "dev", "--id", "gpu-1", "--threads",
                                 "1", "--device", "cuda"])
    assert result.exit_code == 1, both(result)
    topics = Topics("dev")
    watcher = MqttClient(BrokerConfig.from_url(url, client_id="dev-watcher"))
    state, info = watcher.subscribe(topics.state("gpu-1"), qos=1), watcher.subscribe(topics.info("gpu-1"), qos=1)
    watcher.connect(timeout=10)
    try:
        said, described = state.get(timeout=5), info.get(timeout=5)
    finally:
        watcher.close()
    assert said is not None and said.payload == b"failed" and said.retain
    assert described is not None
    assert re.match(r"cannot run on device cuda: device 'cuda' asked for", json.loads(described.payload)["failure"])
