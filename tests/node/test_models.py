"""What an assignment makes a node load: the model and the codec's calibration tables, files inside the model
folder pinned by sha256; and the head and the tail agreeing on the codec through those tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

import splitinfer
from splitinfer.broker.client import Message
from splitinfer.broker.messages import Assignment, TableRef, pack_features
from splitinfer.broker.topics import Topics
from splitinfer.codec import format as wire
from splitinfer.codec.table import CalibrationTable
from splitinfer.errors import ModelError
from splitinfer.head.pipeline import HeadPipeline
from splitinfer.head.sources import Frame
from splitinfer.node.models import load_assigned_tables
from splitinfer.splitting.model import file_sha256
from splitinfer.tail.batcher import TailPipeline

MODEL = "yolov8n.yaml"
IMGSZ = 128


def _table(folder: Path, cut: str) -> Tuple[CalibrationTable, TableRef]:
    """A table for ``cut`` of the model (every channel sent, centred on 0), saved in ``folder``."""
    model = splitinfer.load_model(MODEL)
    head, _ = splitinfer.split(model, cut)
    x, metas = splitinfer.to_batch([np.zeros((64, 64, 3), np.uint8)], IMGSZ)
    channels = [int(t.shape[1]) for t in head(x, metas).tensors]
    table = CalibrationTable(model=model.fingerprint, cut=head.cut, imgsz=IMGSZ, layers=head.live,
                             sensitivity=[np.full(c, 1e-3, np.float32) for c in channels],
                             mean=[np.zeros(c, np.float32) for c in channels])
    path = table.save(folder / f"yolov8n-{cut}.npz")
    return table, TableRef(path.name, file_sha256(path))


def _assignment(cut: str, tables: list) -> Assignment:
    return Assignment(generation=1, model=MODEL, imgsz=IMGSZ, cut=cut, codec={"bits": 4, "quality": 50},
                      tables=tables)


def test_tables_are_files_in_the_model_folder_pinned_by_sha256(tmp_path: Path) -> None:
    table, ref = _table(tmp_path, "b")
    assert [t.digest for t in load_assigned_tables(_assignment("b", [ref]), model_dir=str(tmp_path))] == [table.digest]
    with pytest.raises(ModelError, match="differs from the assigned"):
        load_assigned_tables(_assignment("b", [TableRef(ref.name, "0" * 64)]), model_dir=str(tmp_path))
    with pytest.raises(ModelError, match="is not in the model folder"):
        load_assigned_tables(_assignment("b", [TableRef("gone.npz", ref.sha256)]), model_dir=str(tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    junk = TableRef("junk.npz", file_sha256(tmp_path / "junk.npz"))
    with pytest.raises(ModelError, match="not a calibration table this node can use"):
        load_assigned_tables(_assignment("b", [junk]), model_dir=str(tmp_path))


@pytest.mark.model
def test_a_head_uses_the_table_of_its_cut_and_the_tail_reads_every_cut(tmp_path: Path) -> None:
    _, ref_b = _table(tmp_path, "b")
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    taken = [(Frame(image, 0), time.time(), 0.1)]
    topics = Topics("t")
    tail = TailPipeline.build(_assignment("", [ref_b]), model_dir=str(tmp_path), device="cpu", half=False)
    for cut, version in (("b", wire.VERSION_WEIGHTED), ("a", 1)):  # no table for cut a: version 1 at 4 bits
        tables = load_assigned_tables(_assignment(cut, [ref_b]), model_dir=str(tmp_path))
        head = HeadPipeline.build(_assignment(cut, [ref_b]), model_dir=str(tmp_path), device="cpu", half=False,
                                  tables=tables)
        blob, _ = head.process(taken, "cam-1")
        assert wire.version_of(blob) == version
        message = Message(topics.features("tail-1", "cam-1"), pack_features(blob, time.time(), {}), 0, False,
                          time.monotonic(), time.time())
        decoded = tail.decode(message, topics)
        assert decoded.features is not None and decoded.features.cut == head.head.cut
