"""The round-trip store: edits keep the user's comments, order and style."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitinfer.errors import FleetConfigError
from splitinfer.fleet import Device, FleetStore

TEXT = """\
# Traffic cameras, north side.
fleet: traffic-a   # the MQTT prefix
broker:
  url: mqtt://10.0.0.2:1883
defaults: {cut: b, bits: 4, batch: 1}
devices:
  # the tail lives in the server room
  - {id: gpu-1, role: tail, docker: "tcp://gpu-01:2376", gpus: all}
  - {id: cam-1, role: head, docker: "ssh://nvidia@cam-1", source: "0"}  # pole 7
"""


def _store(tmp_path: Path) -> FleetStore:
    path = tmp_path / "fleet.yaml"
    path.write_text(TEXT)
    return FleetStore.open(path)


def test_add_then_remove_keeps_comments_and_order(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_device(Device(id="cam-2", role="head", docker="ssh://nvidia@cam-2", source="rtsp://x/y", cut="a"))
    store.save()
    text = store.path.read_text()
    assert 'source: "0"}  # pole 7\n' in text
    for kept in (
        "# Traffic cameras, north side.",
        "# the MQTT prefix",
        "# the tail lives in the server room",
        "# pole 7",
        'docker: "tcp://gpu-01:2376"',
    ):
        assert kept in text
    assert text.index("gpu-1") < text.index("cam-1") < text.index("cam-2")
    assert (
        "- {id: cam-2, role: head, docker: ssh://nvidia@cam-2, source: rtsp://x/y, cut: a}" in text
    )  # flow, like its siblings
    assert [d.id for d in FleetStore.open(store.path).fleet.devices] == ["gpu-1", "cam-1", "cam-2"]

    store = FleetStore.open(store.path)
    store.remove_device("cam-2")
    store.save()
    assert store.path.read_text() == TEXT


def test_add_duplicate_is_refused_and_leaves_document_alone(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(FleetConfigError, match=r"devices\[2\]\.id: duplicate id 'cam-1'"):
        store.add_device(Device(id="cam-1", role="head", docker="unix:///x.sock", source="0"))
    assert store.dumps() == TEXT


def test_remove_unknown_device(tmp_path: Path) -> None:
    with pytest.raises(FleetConfigError, match=r"no device 'nope' \(devices: gpu-1, cam-1\)"):
        _store(tmp_path).remove_device("nope")


def test_create_missing_file_starts_from_skeleton(tmp_path: Path) -> None:
    (tmp_path / "site-7").mkdir()
    store = FleetStore.open(tmp_path / "site-7" / "fleet.yaml", create=True)
    assert store.fleet.fleet == "site-7" and store.fleet.devices == []
    store.add_device(Device(id="gpu-1", role="tail", docker="unix:///var/run/docker.sock"))
    store.save()
    assert "# edit: the broker every device can reach" in store.path.read_text()
    assert FleetStore.open(store.path).fleet.devices[0].id == "gpu-1"
