"""Letterboxing frames the way Ultralytics does, remembering how, so boxes can be mapped back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Sequence, Tuple

from splitinfer.errors import ModelError
from splitinfer.features import FrameMeta

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["letterbox", "to_batch"]

PAD_VALUE = 114


def letterbox(
    image: np.ndarray, size: Tuple[int, int], *, scaleup: bool = True
) -> Tuple[np.ndarray, float, Tuple[int, int]]:
    """Resize ``image`` (H×W×3 uint8) to fit ``size`` (height, width) keeping its aspect ratio, and pad the rest
    with grey 114, centred — Ultralytics' ``LetterBox(auto=False, center=True)``.

    Returns the padded image, the gain, and the (left, top) padding in pixels.
    """
    import cv2

    if image is None or getattr(image, "ndim", 0) != 3 or image.shape[2] != 3:
        raise ModelError(f"letterbox expects an H×W×3 image, got shape {getattr(image, 'shape', None)}")
    h, w = image.shape[:2]
    new_h, new_w = size
    ratio = min(new_h / h, new_w / w)
    if not scaleup:
        ratio = min(ratio, 1.0)
    unpad_w, unpad_h = round(w * ratio), round(h * ratio)
    dw, dh = (new_w - unpad_w) / 2, (new_h - unpad_h) / 2
    if (w, h) != (unpad_w, unpad_h):
        image = cv2.resize(image, (unpad_w, unpad_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return image, ratio, (left, top)


def to_batch(
    images: Sequence[np.ndarray],
    imgsz: int,
    *,
    sources: Sequence[str] = (),
    seqs: Sequence[int] = (),
    timestamps: Sequence[float] = (),
) -> Tuple[torch.Tensor, List[FrameMeta]]:
    """Letterbox BGR frames (as OpenCV reads them) into a float RGB batch B×3×imgsz×imgsz in [0, 1]."""
    import numpy as np
    import torch

    padded, frames = [], []
    for k, image in enumerate(images):
        out, ratio, pad = letterbox(image, (imgsz, imgsz))
        padded.append(out[..., ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        frames.append(FrameMeta(
            source=sources[k] if k < len(sources) else "",
            seq=seqs[k] if k < len(seqs) else k,
            timestamp=timestamps[k] if k < len(timestamps) else 0.0,
            orig_shape=(int(image.shape[0]), int(image.shape[1])),
            ratio=float(ratio),
            pad=(float(pad[0]), float(pad[1])),
        ))
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(padded))).float().div_(255.0)
    return batch, frames


def letterboxed_uint8(image: Any, imgsz: int) -> Any:
    """The letterboxed BGR frame itself (what a JPEG baseline would send)."""
    return letterbox(image, (imgsz, imgsz))[0]
