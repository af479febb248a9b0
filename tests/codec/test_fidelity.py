"""Wire format 2 on the realistic checkpoint: calibrated on zidane.jpg, measured on bus.jpg (never calibrated on),
at cut d and the default quality — bytes and fidelity against the unsplit model, as ``splitctl bench codec``
measures them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

from splitinfer import Codec, CodecError
from splitinfer.errors import ModelError

pytestmark = pytest.mark.model


def views(name: str) -> List[np.ndarray]:
    """The photograph, mirrored, turned a quarter (people lying: the ``Fall`` class) and cropped."""
    import cv2
    from ultralytics.utils import ASSETS

    img = cv2.imread(str(Path(ASSETS) / name))
    h, w = img.shape[:2]
    return [img, np.ascontiguousarray(img[:, ::-1]), cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
            np.ascontiguousarray(img[h // 8 : h * 7 // 8, w // 8 : w * 7 // 8])]


@pytest.fixture(scope="module")
def realistic() -> Any:
    import torch

    import splitinfer
    from splitinfer.splitting.weights import realistic_checkpoint

    try:
        path = realistic_checkpoint(fetch=False)
    except ModelError as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return splitinfer.load_model(str(path))


def test_cut_d_default_quality_on_held_out_frames(realistic: Any) -> None:
    import splitinfer
    from splitinfer.splitting.fidelity import mean_average_precision
    from splitinfer.splitting.sensitivity import calibrate

    table = calibrate(realistic, "d", views("zidane.jpg"), imgsz=640)
    head, tail = splitinfer.split(realistic, "d")
    encoder, decoder = Codec(table=table), Codec(table=table)
    sizes, predictions, references = [], [], []
    for image in views("bus.jpg"):
        x, metas = splitinfer.to_batch([image], 640)
        ref = splitinfer.postprocess(realistic(x), metas, conf=0.25)[0]
        blob = encoder.encode(head(x, metas))
        sizes.append(len(blob))
        pred = splitinfer.postprocess(tail(decoder.decode(blob)), metas, conf=0.001)[0]
        references.append((ref.boxes, ref.classes))
        predictions.append((pred.boxes, pred.scores, pred.classes))
    map50, map50_95 = mean_average_precision(predictions, references)
    assert map50 is not None and map50_95 is not None
    # measured: 12.8-13.6 kB, mAP50 0.976, mAP50-95 0.927 (issue 11's target: <= 25 kB at 0.97 / 0.90)
    assert max(sizes) <= 25_000, sizes
    assert map50 >= 0.95 and map50_95 >= 0.88, (map50, map50_95, sizes)
    with pytest.raises(CodecError, match="calibration table"):
        Codec().decode(encoder.encode(head(*splitinfer.to_batch(views("bus.jpg")[:1], 640))))
