"""Write the codec benchmark's frame set: Ultralytics' bundled bus.jpg and zidane.jpg and eleven variations of
each (flips, crops, rescales, exposure, blur), 24 frames in all.

    splitctl bench frames [--out bench/frames]            # bench/frames is gitignored
    splitctl bench codec MODEL --source bench/frames --bits 2
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

__all__ = ["variations", "write_frames"]


def variations(img: np.ndarray) -> List[np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    return [
        img,
        img[:, ::-1],
        img[: h * 3 // 4, : w * 3 // 4],
        img[h // 4 :, w // 4 :],
        cv2.resize(img, (w // 2, h // 2)),
        cv2.resize(img, (w * 3 // 4, h * 3 // 4))[:, ::-1],
        img[h // 8 : h * 7 // 8, w // 8 : w * 7 // 8],
        img[:, w // 3 :],
        cv2.convertScaleAbs(img, alpha=0.6, beta=0),
        cv2.convertScaleAbs(img, alpha=1.3, beta=10)[:, ::-1],
        cv2.GaussianBlur(img, (5, 5), 0),
        cv2.resize(img, (w * 2 // 3, h * 2 // 3))[h // 6 :],
    ]


def write_frames(out: Path) -> List[Path]:
    """Write the 24 frames as PNG under ``out``; return their paths."""
    import cv2

    from splitinfer.errors import SourceError
    from splitinfer.splitting.samples import bundled_images

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in (p for p in bundled_images() if p.name in ("bus.jpg", "zidane.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            raise SourceError(f"{path}: not a readable image")
        for k, frame in enumerate(variations(image)):
            target = out / f"{path.stem}-{k:02d}.png"
            cv2.imwrite(str(target), np.ascontiguousarray(frame))
            written.append(target)
    return written
