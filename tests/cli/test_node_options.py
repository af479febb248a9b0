"""What the node and coordinator commands take from the environment and say at start (containers are
configured through the environment: deploy's env, fleet.yaml's devices[].env)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from typer.main import get_command

from splitinfer.broker.local import LocalBroker, child_env
from splitinfer.cli.app import app


def _param(*path: str) -> object:
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def test_loop_and_the_other_head_options_have_environment_variables() -> None:
    head = _param("node", "head")
    envvars = {p.name: p.envvar for p in head.params}  # type: ignore[attr-defined]
    assert envvars["loop"] == "SPLITINFER_LOOP"
    assert envvars["source"] == "SPLITINFER_SOURCE" and envvars["fps"] == "SPLITINFER_FPS"


@pytest.mark.mosquitto
def test_the_coordinator_says_what_it_runs_before_any_device_appears(mosquitto_broker: LocalBroker) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "splitinfer", "coordinator", "--broker", mosquitto_broker.url,
                             "--fleet", "hello", "--model", "yolov8n.yaml", "--cut", "auto", "--bits", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    try:
        started = time.monotonic()
        line = proc.stderr.readline().decode() if proc.stderr else ""
        assert time.monotonic() - started < 10
    finally:
        proc.terminate()
        proc.wait(10)
    assert line.startswith(f"coordinator for fleet hello on {mosquitto_broker.url}: model yolov8n.yaml at 640, "
                           "cut auto, 2-bit, batch 1 (policy from flags); inventory: none"), line


def test_the_coordinators_codec_defaults_are_the_fleets_and_the_codecs() -> None:
    # three places say the same default (the CLI must not import the codec to start fast): one test holds them
    from splitinfer.codec.settings import DEFAULT_KEYFRAME_INTERVAL, DEFAULT_QUALITY
    from splitinfer.fleet.schema import Defaults

    for command in (_param("coordinator"), _param("run")):
        params = {p.name: p.default for p in command.params}  # type: ignore[attr-defined]
        assert params["quality"] == Defaults().quality == DEFAULT_QUALITY
        assert params["keyframe_interval"] == Defaults().keyframe_interval == DEFAULT_KEYFRAME_INTERVAL
