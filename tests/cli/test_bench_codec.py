from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from splitinfer.cli.app import app

runner = CliRunner()

KEYS = {"frames", "bits_per_value", "payload_bytes_mean", "jpeg_bytes_mean", "map50", "map50_95", "encode_ms_mean",
        "decode_ms_mean", "head_ms_mean", "tail_ms_mean"}


@pytest.mark.model
def test_bench_codec_json_has_the_promised_fields() -> None:
    result = runner.invoke(app, ["bench", "codec", "yolov8n.yaml", "--source", "synthetic:2", "--imgsz", "128",
                                 "--bits", "32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= KEYS and data["frames"] == 2
    assert 16 < data["bits_per_value"] <= 32.5  # float passthrough: zstd takes a little off 32 bits a value


@pytest.mark.model
def test_bench_codec_on_the_realistic_checkpoint_is_faithful_at_4_bits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from splitinfer.splitting.weights import realistic_checkpoint

    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", "codec", str(realistic_checkpoint()), "--source", "synthetic:4",
                                 "--imgsz", "320", "--bits", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["reference_boxes"] > 0 and data["map50"] >= 0.95
    assert data["bits_per_value"] < 4


def test_bench_codec_bad_setting_is_a_clear_error() -> None:
    result = runner.invoke(app, ["bench", "codec", "yolov8n.yaml", "--source", "synthetic:1", "--set", "nonsense"])
    assert result.exit_code == 1 and "expected KEY=VALUE" in result.output
