"""Write the codec benchmark's frame set: Ultralytics' bundled bus.jpg and zidane.jpg and eleven variations of
each (flips, crops, rescales, exposure, blur), 24 frames in all.

    python bench/make_frames.py [OUT]            # default bench/frames (gitignored)
    splitctl bench codec MODEL --source bench/frames --bits 2
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import numpy as np


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


def main() -> None:
    import cv2
    from ultralytics.utils import ASSETS

    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "frames")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("bus.jpg", "zidane.jpg"):
        for k, frame in enumerate(variations(cv2.imread(str(Path(ASSETS) / name)))):
            cv2.imwrite(str(out / f"{Path(name).stem}-{k:02d}.png"), np.ascontiguousarray(frame))
    print(out)


if __name__ == "__main__":
    main()
