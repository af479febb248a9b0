"""The frame sets of the codec's rate–fidelity benchmark, built deterministically from images available offline.

Four sets, drawn from *disjoint source photographs*, so no figure is measured on a frame (or a variation of a
frame) that calibrated the codec:

* ``calibration``: Ultralytics' ``zidane.jpg`` (12 variations, 4 rotations) and scikit-image's ``astronaut`` (6
  variations, 4 rotations), plus 10 scikit-image scenes without people (chelsea, coffee, coins, horse, ihc, moon,
  retina, text, page, grass) and 4 mosaics of those (3×3 and 4×4, for small objects): 40 frames.
* ``evaluation``: Ultralytics' ``bus.jpg`` (12 variations, 4 rotations) and scikit-image's ``camera`` (the
  cameraman, 6 variations, 4 rotations), plus 6 scenes without people (motorcycle_left, rocket, brick, color, logo,
  gravel): 32 frames.
* ``small``: 8 mosaics (four 3×3, four 4×4) of evaluation frames, so people are 1/9 to 1/16 of their size.
* ``static``: a static-camera clip of 30 frames: the letterboxed ``bus.jpg`` as a fixed background, the cameraman
  (scaled to ~90 px) walking across it, and fresh Gaussian sensor noise (σ = 2 grey levels) on every frame.

Variations are those of ``bench/frames.py`` (flips, crops, rescales, exposure, blur); rotations turn a
photograph a quarter each way, at full and half size. scikit-image's images
are read from its installed ``skimage/data`` folder, or from ``skimage_data`` (the folder of an unzipped
``scikit-image`` wheel: ``pip download scikit-image --no-deps`` then unzip ``skimage/data/*``).

    python -m splitinfer.bench.codec_frames OUT [--skimage-data DIR]    # writes OUT/<set>/*.png
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from splitinfer.bench.frames import variations

__all__ = ["SETS", "build_sets", "skimage_data_dir", "write_sets"]

SETS = ("calibration", "evaluation", "small", "static")
Named = List[Tuple[str, np.ndarray]]

CALIBRATION_SCENES = ("chelsea", "coffee", "coins", "horse", "ihc", "moon", "retina", "text", "page", "grass")
EVALUATION_SCENES = ("motorcycle_left", "rocket", "brick", "color", "logo", "gravel")


def skimage_data_dir(explicit: Optional[str] = None) -> Path:
    """Where scikit-image's bundled images are: ``explicit``, else the installed package's data folder."""
    if explicit:
        path = Path(explicit)
    else:
        spec = importlib.util.find_spec("skimage")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("scikit-image is not installed; pass --skimage-data DIR (an unzipped wheel's "
                                    "skimage/data folder: pip download scikit-image --no-deps)")
        path = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (path / "astronaut.png").is_file():
        raise FileNotFoundError(f"{path} does not hold scikit-image's images (no astronaut.png)")
    return path


def _read(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey images come back as 3 equal channels
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return np.ascontiguousarray(image)


SIX = (0, 1, 3, 5, 8, 10)  # original, flip, crop, rescale+flip, dark, blur


def _rotations(name: str, img: np.ndarray) -> Named:
    """Turned a quarter each way, full size and half size: people lying down, which this detector calls ``Fall``
    (without them the evaluation set holds one ``Fall`` reference, and mAP, a mean over classes, hangs on it)."""
    import cv2

    out: Named = []
    for tag, code in (("cw", cv2.ROTATE_90_CLOCKWISE), ("ccw", cv2.ROTATE_90_COUNTERCLOCKWISE)):
        turned = cv2.rotate(img, code)
        out.append((f"{name}-{tag}", turned))
        out.append((f"{name}-{tag}-half", cv2.resize(turned, (turned.shape[1] // 2, turned.shape[0] // 2))))
    return out


def _mosaic(tiles: List[np.ndarray], grid: int, size: int = 640) -> np.ndarray:
    """``grid``×``grid`` tiles, each letterboxed into a ``size/grid`` square (grey 114 around)."""
    from splitinfer.splitting.preprocess import letterbox

    cell = size // grid
    out = np.full((cell * grid, cell * grid, 3), 114, dtype=np.uint8)
    for k in range(grid * grid):
        tile = letterbox(tiles[k % len(tiles)], (cell, cell))[0]
        r, c = divmod(k, grid)
        out[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
    return out


def _mosaics(pool: Named, count: int, seed: int, prefix: str) -> Named:
    rng = np.random.default_rng(seed)
    out: Named = []
    for k in range(count):
        grid = 3 if k % 2 == 0 else 4
        picks = rng.choice(len(pool), size=grid * grid, replace=len(pool) < grid * grid)
        out.append((f"{prefix}-{grid}x{grid}-{k:02d}", _mosaic([pool[i][1] for i in picks], grid)))
    return out


def _static_clip(background: np.ndarray, walker: np.ndarray, frames: int = 30, seed: int = 0) -> Named:
    """A fixed camera: the same background, a small figure moving left to right, fresh sensor noise each frame."""
    import cv2

    from splitinfer.splitting.preprocess import letterbox

    base = letterbox(background, (640, 640))[0].astype(np.int16)
    h, w = walker.shape[:2]
    scale = 90.0 / h
    small = cv2.resize(walker, (max(1, round(w * scale)), 90), interpolation=cv2.INTER_AREA).astype(np.int16)
    sh, sw = small.shape[:2]
    rng = np.random.default_rng(seed)
    out: Named = []
    for k in range(frames):
        frame = base.copy()
        x = 60 + k * (640 - 120 - sw) // max(1, frames - 1)
        y = 360
        frame[y : y + sh, x : x + sw] = small
        frame += np.round(rng.normal(0.0, 2.0, frame.shape)).astype(np.int16)
        out.append((f"static-{k:03d}", np.clip(frame, 0, 255).astype(np.uint8)))
    return out


def build_sets(skimage_data: Optional[str] = None) -> Dict[str, Named]:
    """The four frame sets (name → list of (frame name, BGR image)), the same pixels on every run."""
    from ultralytics.utils import ASSETS

    sk = skimage_data_dir(skimage_data)
    zidane, bus = _read(Path(ASSETS) / "zidane.jpg"), _read(Path(ASSETS) / "bus.jpg")
    astronaut, camera = _read(sk / "astronaut.png"), _read(sk / "camera.png")

    def scenes(names: Tuple[str, ...]) -> Named:
        found = []
        for name in names:
            path = next(p for p in (sk / f"{name}.png", sk / f"{name}.jpg") if p.is_file())
            found.append((name, _read(path)))
        return found

    def varied(name: str, img: np.ndarray, keep: Callable[[int], bool]) -> Named:
        return [(f"{name}-{k:02d}", v) for k, v in enumerate(variations(img)) if keep(k)]

    cal = varied("zidane", zidane, lambda k: True) + varied("astronaut", astronaut, lambda k: k in SIX)
    cal += _rotations("zidane", zidane) + _rotations("astronaut", astronaut)
    cal += scenes(CALIBRATION_SCENES)
    cal += _mosaics(list(cal), 4, seed=1, prefix="calmosaic")
    ev = varied("bus", bus, lambda k: True) + varied("camera", camera, lambda k: k in SIX)
    ev += _rotations("bus", bus) + _rotations("camera", camera)
    ev += scenes(EVALUATION_SCENES)
    small = _mosaics(list(ev), 8, seed=2, prefix="mosaic")
    # the cameraman cut out of his picture (rows/cols of camera.png where he stands)
    walker = camera[40:440, 120:340]
    return {"calibration": cal, "evaluation": ev, "small": small, "static": _static_clip(bus, walker)}


def write_sets(out: str, skimage_data: Optional[str] = None) -> Dict[str, List[Path]]:
    import cv2

    written: Dict[str, List[Path]] = {}
    for name, frames in build_sets(skimage_data).items():
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for stem, image in frames:
            path = folder / f"{stem}.png"
            cv2.imwrite(str(path), np.ascontiguousarray(image))
            written[name].append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--skimage-data", default=None)
    args = parser.parse_args()
    for name, paths in write_sets(args.out, args.skimage_data).items():
        print(f"{name}: {len(paths)} frames in {Path(args.out) / name}")


if __name__ == "__main__":
    main()
