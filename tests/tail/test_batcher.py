"""The tail's processing below the process level: decode a features message, batch frames from several heads,
run the tail layers, and get the unsplit model's detections back."""

from __future__ import annotations

import time

import numpy as np
import pytest

import splitinfer
from splitinfer.broker.client import Message
from splitinfer.broker.messages import Assignment, pack_features
from splitinfer.broker.topics import Topics
from splitinfer.codec import Codec
from splitinfer.errors import CodecError
from splitinfer.tail.batcher import TailPipeline

pytestmark = pytest.mark.model

MODEL = "yolov8n.yaml"
TOPICS = Topics("test")


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def _message(head: str, seq: int, image: np.ndarray, *, source: str = "") -> Message:
    model = splitinfer.load_model(MODEL)
    front, _ = splitinfer.split(model, "b")
    x, metas = splitinfer.to_batch([image], 128, sources=[source or head], seqs=[seq], timestamps=[time.time()])
    blob = Codec(bits=32).encode(front(x, metas))
    payload = pack_features(blob, time.time(), {"head_ms": 1.0})
    return Message(TOPICS.features("tail-1", head), payload, 0, False, time.monotonic(), time.time())


@pytest.fixture(scope="module")
def pipeline() -> TailPipeline:
    return TailPipeline.build(Assignment(generation=1, model=MODEL, imgsz=128, cut=""), model_dir="", device="cpu",
                              half=False)


def test_frames_from_two_heads_run_as_one_batch_and_match_the_unsplit_model(pipeline: TailPipeline) -> None:
    images = {"cam-1": _image(1), "cam-2": _image(2)}
    decoded = [pipeline.decode(_message(head, 7, image), TOPICS) for head, image in images.items()]
    groups = pipeline.group(decoded)
    assert len(groups) == 1 and len(groups[0]) == 2
    results = pipeline.run(groups[0], conf=0.001, iou=0.7)
    assert [head for head, _ in results] == ["cam-1", "cam-2"]
    model = splitinfer.load_model(MODEL)
    for (head, record), image in zip(results, images.values()):
        x, metas = splitinfer.to_batch([image], 128)
        want = splitinfer.postprocess(model(x), metas, conf=0.001)[0]
        assert record["head"] == head and record["seq"] == 7
        assert len(record["boxes"]) == len(want)
        np.testing.assert_allclose(np.array(record["boxes"]).reshape(-1, 4), want.boxes, atol=0.02)
        assert set(record["timings"]) >= {"head_ms", "transit_ms", "decode_ms", "tail_ms", "e2e_ms"}


def test_features_claiming_another_heads_source_are_refused(pipeline: TailPipeline) -> None:
    with pytest.raises(CodecError, match="claim another source"):
        pipeline.decode(_message("cam-1", 1, _image(3), source="cam-2"), TOPICS)


def test_frames_of_different_cuts_are_batched_apart(pipeline: TailPipeline) -> None:
    first = pipeline.decode(_message("cam-1", 1, _image(4)), TOPICS)
    model = splitinfer.load_model(MODEL)
    front, _ = splitinfer.split(model, "a")
    x, metas = splitinfer.to_batch([_image(5)], 128, sources=["cam-2"], seqs=[1])
    payload = pack_features(Codec(bits=32).encode(front(x, metas)), time.time(), {})
    second = pipeline.decode(Message(TOPICS.features("tail-1", "cam-2"), payload, 0, False, 0.0, time.time()), TOPICS)
    assert len(pipeline.group([first, second])) == 2


def test_offloaded_frames_run_through_the_whole_model(pipeline: TailPipeline) -> None:
    from splitinfer.codec.frames import encode_frames
    from splitinfer.features import FrameMeta
    from splitinfer.splitting.preprocess import letterbox

    image = _image(6)
    padded, ratio, pad = letterbox(image, (128, 128))
    meta = FrameMeta(source="cam-3", seq=4, timestamp=time.time(), orig_shape=(120, 160), ratio=ratio,
                     pad=(float(pad[0]), float(pad[1])))
    blob = encode_frames([padded], [meta], fmt="jpeg", quality=100)
    msg = Message(TOPICS.features("tail-1", "cam-3"), pack_features(blob, time.time(), {}), 0, False, 0.0,
                  time.time())
    decoded = pipeline.decode(msg, TOPICS)
    assert decoded.mode == "offload" and decoded.batch == 1
    [(head, record)] = pipeline.run(pipeline.group([decoded])[0], conf=0.001, iou=0.7)
    assert (head, record["mode"], record["cut"], record["seq"]) == ("cam-3", "offload", None, 4)
    x, metas = splitinfer.to_batch([image], 128)
    want = splitinfer.postprocess(splitinfer.load_model(MODEL)(x), metas, conf=0.001)[0]
    assert abs(len(record["boxes"]) - len(want)) <= max(3, len(want) // 5)  # JPEG at q100: nearly the same


def test_offloaded_frames_of_the_wrong_size_are_refused(pipeline: TailPipeline) -> None:
    from splitinfer.codec.frames import encode_frames
    from splitinfer.features import FrameMeta

    blob = encode_frames([np.zeros((64, 64, 3), np.uint8)], [FrameMeta(source="cam-3")], fmt="jpeg")
    msg = Message(TOPICS.features("tail-1", "cam-3"), pack_features(blob, time.time(), {}), 0, False, 0.0,
                  time.time())
    with pytest.raises(CodecError, match="expected 128 × 128"):
        pipeline.decode(msg, TOPICS)
