from __future__ import annotations

import numpy as np
import pytest
import torch

import splitinfer
from splitinfer.features import FrameMeta
from splitinfer.splitting import letterbox, postprocess, to_batch


@pytest.mark.parametrize("shape", [(1080, 810, 3), (480, 640, 3), (33, 500, 3), (640, 640, 3)])
def test_letterbox_matches_ultralytics(shape: tuple) -> None:
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=shape, dtype=np.uint8)
    ours, ratio, pad = letterbox(image, (640, 640))
    theirs = LetterBox((640, 640), auto=False, center=True)(image=image)
    assert np.array_equal(ours, theirs)
    assert ratio == pytest.approx(min(640 / shape[0], 640 / shape[1]))
    assert pad[0] >= 0 and pad[1] >= 0


def test_to_batch_is_rgb_float_and_records_frames() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    batch, frames = to_batch([image], 64, sources=["cam"], seqs=[7], timestamps=[1.5])
    assert batch.shape == (1, 3, 64, 64) and batch.dtype == torch.float32
    assert batch[0, 2, 32, 32] == 1.0 and batch[0, 0, 32, 32] == 0.0  # blue lands in channel 2 (RGB)
    expected = FrameMeta(source="cam", seq=7, timestamp=1.5, orig_shape=(100, 200), ratio=0.32, pad=(0.0, 16.0))
    assert frames[0] == expected


def test_boxes_map_back_to_the_original_frame_like_ultralytics() -> None:
    from ultralytics.utils.ops import scale_boxes

    frame = FrameMeta(orig_shape=(1080, 810), ratio=640 / 1080, pad=(80.0, 0.0))
    # one prediction row: cx, cy, w, h, then class scores (2 classes), as Detect returns it (B, 4+nc, N)
    pred = torch.zeros(1, 6, 1)
    pred[0, :4, 0] = torch.tensor([320.0, 320.0, 100.0, 200.0])
    pred[0, 5, 0] = 0.9
    det = postprocess(pred, [frame], conf=0.25, names={0: "a", 1: "b"})[0]
    expected = scale_boxes((640, 640), torch.tensor([[270.0, 220.0, 370.0, 420.0]]), (1080, 810))
    assert np.allclose(det.boxes, expected.numpy(), atol=1e-3)
    assert det.classes.tolist() == [1] and det.to_dict()["names"] == ["b"]


@pytest.mark.model
def test_split_detections_equal_unsplit_on_a_real_image() -> None:
    import cv2
    from ultralytics.utils import ASSETS

    model = splitinfer.load_model("yolo11n.yaml")
    image = cv2.imread(str(ASSETS / "bus.jpg"))
    x, frames = to_batch([image], 320)
    head, tail = splitinfer.split(model, "b")
    whole = postprocess(model(x), frames, conf=0.0001)[0]
    parts = postprocess(tail(head(x, frames)), frames, conf=0.0001)[0]
    assert len(whole) > 0
    assert np.array_equal(whole.boxes, parts.boxes) and np.array_equal(whole.scores, parts.scores)
    assert whole.boxes[:, [0, 2]].max() <= 810 and whole.boxes[:, [1, 3]].max() <= 1080
