"""Sample frames made from the images Ultralytics ships (bus.jpg, zidane.jpg): the synthetic clip that
``run --local`` shows out of the box and that profiles calibrate on. No camera, file or network needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Tuple

from splitinfer.errors import SourceError

__all__ = ["SYNTHETIC", "bundled_images", "synthetic_frames"]

SYNTHETIC = "synthetic"


def bundled_images() -> List[Path]:
    """The sample images Ultralytics ships (bus.jpg, zidane.jpg)."""
    from ultralytics.utils import ASSETS

    return sorted(Path(ASSETS).glob("*.jpg"))


def synthetic_frames(count: int = 60, size: Tuple[int, int] = (720, 1280)) -> Iterator[Tuple[Any, str]]:
    """A deterministic clip: the bundled images panned slowly across a frame of ``size`` (height, width), so
    consecutive frames differ a little, as video does. Yields (BGR image, name)."""
    import cv2
    import numpy as np

    images = [im for im in (cv2.imread(str(p)) for p in bundled_images()) if im is not None]
    if not images:
        raise SourceError("synthetic source: Ultralytics' bundled images were not found")
    height, width = size
    per_image = max(1, count // len(images))
    fitted = [cv2.resize(im, (min(width, max(1, int(im.shape[1] * height / im.shape[0]))), height)) for im in images]
    for k in range(count):
        scaled = fitted[min(k // per_image, len(images) - 1)]
        canvas = np.full((height, width, 3), 114, dtype=np.uint8)
        room = width - scaled.shape[1]
        step = (k % per_image) * 4
        shift = step % (2 * room) if room else 0
        shift = shift if shift <= room else 2 * room - shift  # pan right, then back
        canvas[:, shift:shift + scaled.shape[1]] = scaled
        yield canvas, f"synthetic-{k:05d}"
