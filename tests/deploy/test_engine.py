"""The engine wrapper's pure parts: log line re-assembly and GPU discovery from engine info."""

from __future__ import annotations

from splitinfer.deploy.engine import _generic_gpus, iter_lines


def test_lines_split_across_chunks_and_utf8_characters() -> None:
    text = "première ligne\r\nzweite Zeile\nlast without newline".encode()
    chunks = [text[i : i + 3] for i in range(0, len(text), 3)]  # cuts through 'è' and '\r\n'
    assert list(iter_lines(chunks)) == ["première ligne", "zweite Zeile", "last without newline"]


def test_empty_lines_are_kept_and_empty_stream_is_empty() -> None:
    assert list(iter_lines([b"a\n\nb\n"])) == ["a", "", "b"]
    assert list(iter_lines([])) == []


def test_gpus_from_generic_resources() -> None:
    resources = [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}},
        {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-abc"}},
    ]
    assert _generic_gpus(resources) == 3
    assert _generic_gpus(None) is None
