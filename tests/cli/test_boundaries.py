"""Numbers an operator types are checked at the boundary, before anything is published or started; model files
are loaded without running code from them, by every command that loads one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--imgsz", "33"], "imgsz"),
        (["--imgsz", "32000"], "imgsz"),
        (["--bits", "99"], "bits must be 2..8"),
        (["--cut", "zz"], "cut"),
        (["--max-wait-ms", "inf"], "max_wait_ms"),
        (["--tail-batch", "0"], "tail_batch"),
        (["--sha256", "nothex"], "sha256"),
        (["--override", "cam-1=zz"], "--override cam-1=zz"),
        (["--inventory", "cam-1=boss"], "--inventory"),
    ],
)
def test_coordinator_refuses_bad_options_before_connecting(args: list, message: str) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["coordinator", "--broker", "mqtt://127.0.0.1:1", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and time.monotonic() - started < 5


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", [["inspect"], ["bench", "codec"]])
def test_a_model_file_carrying_code_is_refused_by_every_command(command: list, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Payload(str(marker))}, evil)
    result = runner.invoke(app, [*command, str(evil)])
    assert result.exit_code == 1 and "not allowed in a model file" in result.output
    assert not marker.exists()


def test_a_device_may_not_take_a_reserved_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fleet", "add", "coordinator", "--role", "tail", "--docker", "unix:///x.sock",
                                 "-f", str(tmp_path / "fleet.yaml")])
    assert result.exit_code == 1 and "reserved" in result.output


def test_a_weak_fleet_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text('{"fleet": "f", "broker": {"url": "mqtt://127.0.0.1:1883", "password_env": "S"}, "devices": []}')
    monkeypatch.setenv("S", "x")
    result = runner.invoke(app, ["broker", "config", "-f", str(fleet), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "too weak" in result.output


def test_mqtts_from_the_flag_with_a_ca_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from splitinfer.cli._common import broker_config

    monkeypatch.delenv("SPLITINFER_BROKER_URL", raising=False)
    monkeypatch.setenv("SPLITINFER_MQTT_CA_FILE", "/etc/ssl/ca.pem")
    config = broker_config("mqtts://broker.lan:8883")
    assert config.tls and config.ca_file == "/etc/ssl/ca.pem" and config.port == 8883
