"""The broker part stays light: no torch, docker or typer; its public names are all importable."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import splitinfer.broker

SRC = Path(__file__).resolve().parents[2] / "src"


def test_broker_modules_import_neither_torch_nor_docker_nor_typer() -> None:
    code = (
        "import sys\n"
        "import splitinfer.broker.client, splitinfer.broker.config, splitinfer.broker.local\n"
        "import splitinfer.broker.mosquitto_conf, splitinfer.broker.topics, splitinfer.broker.embedded\n"
        "heavy = sorted({'torch', 'docker', 'typer', 'amqtt', 'ultralytics'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr


def test_topics_do_not_need_paho() -> None:
    code = "import sys; import splitinfer.broker.topics; assert 'paho' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr


def test_broker_all_is_complete() -> None:
    for name in splitinfer.broker.__all__:
        assert getattr(splitinfer.broker, name) is not None
    for module in set(splitinfer.broker._EXPORTS.values()):
        public = set(importlib.import_module(module).__all__)
        assert set(splitinfer.broker.__all__) & public, module
