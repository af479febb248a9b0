"""The pieces bench codec and bench codec-curve share: reading off an image codec's bytes at a fidelity, the image
codecs themselves, and scoring a tally."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from splitinfer.bench.rate_fidelity import (
    Tally,
    image_codecs,
    image_roundtrip,
    matched,
    matched_per_codec,
    pixel_digest,
)


def curve(*points: Any, codec: str = "jpeg") -> List[Dict[str, Any]]:
    return [{"codec": codec, "quality": q, "kB": kb, "map50": None, "map50_95": fid} for q, kb, fid in points]


def test_matched_interpolates_in_log_kb_between_the_points_around_the_target() -> None:
    m = matched(curve((40, 10.0, 0.70), (60, 40.0, 0.90), (90, 80.0, 0.95)), 0.80)
    assert m["match"] == "interpolated" and m["point"]["quality"] == 60
    assert m["kB"] == pytest.approx(math.sqrt(10.0 * 40.0))  # halfway in fidelity: the geometric mean of the kB


def test_matched_takes_the_cheapest_point_that_reaches_the_target_on_a_bumpy_curve() -> None:
    # q75 is bigger and worse than q60 (it happens on few frames): the cheapest point reaching 0.85 is q60
    m = matched(curve((40, 10.0, 0.70), (75, 50.0, 0.84), (60, 40.0, 0.90)), 0.85)
    assert m["point"]["quality"] == 60 and 10.0 < m["kB"] < 40.0


def test_matched_says_when_even_the_cheapest_point_reaches_it_and_when_none_does() -> None:
    points = curve((40, 10.0, 0.70), (90, 80.0, 0.95))
    assert matched(points, 0.60) == {"kB": 10.0, "match": "at most", "point": points[0]}
    assert matched(points, 0.99) == {"kB": None, "match": "never", "point": None}
    assert matched(points, None)["match"] == "no reference boxes"
    assert matched(curve((40, 10.0, None)), 0.5)["match"] == "never"  # a point without boxes proves nothing


def test_matched_per_codec_keeps_the_codecs_apart_in_their_order() -> None:
    points = curve((90, 80.0, 0.95), codec="avif") + curve((40, 10.0, 0.99))
    found = matched_per_codec(points, 0.9)
    assert list(found) == ["jpeg", "avif"] and found["jpeg"]["match"] == "at most"
    assert found["avif"]["point"]["codec"] == "avif"


def test_image_codecs_skip_what_pillow_lacks_and_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    monkeypatch.setattr(features, "check", lambda name: name != "avif")
    available, skipped = image_codecs(["jpeg", "webp", "avif"])
    assert available == ["jpeg", "webp"] and list(skipped) == ["avif"] and "without AVIF" in skipped["avif"]
    with pytest.raises(ValueError, match="unknown image codec 'gif'"):
        image_codecs(["gif"])


@pytest.mark.parametrize("kind", [k for k in ("jpeg", "webp", "avif") if not image_codecs([k])[1]])
def test_image_roundtrip_gives_the_frame_back_smaller_at_lower_quality(kind: str) -> None:
    import cv2
    from ultralytics.utils import ASSETS

    bgr = cv2.resize(cv2.imread(f"{ASSETS}/bus.jpg"), (160, 208))
    low, decoded_low = image_roundtrip(kind, 40, bgr)
    high, decoded_high = image_roundtrip(kind, 90, bgr)
    assert decoded_low.shape == decoded_high.shape == bgr.shape and decoded_high.dtype == np.uint8
    assert low < high
    error = lambda d: float(np.abs(d.astype(np.int16) - bgr).mean())  # noqa: E731
    assert error(decoded_high) < error(decoded_low) < 40  # BGR order kept: swapped channels would be far off


def test_tally_scores_its_detections_against_the_references() -> None:
    boxes = np.array([[10.0, 10.0, 50.0, 80.0], [100.0, 20.0, 140.0, 90.0]])
    classes = np.array([0.0, 1.0])
    references = [(boxes, classes)]
    exact, shifted = Tally(quality=50), Tally(quality=10)
    exact.add(1000, (boxes, np.array([0.9, 0.8]), classes))
    shifted.add(500, (boxes + 12.0, np.array([0.9, 0.8]), classes))
    row = exact.row(references)
    assert row == {"quality": 50, "kB": 1.0, "kB_max": 1.0, "map50": 1.0, "map50_95": 1.0}
    worse: Optional[float] = shifted.row(references)["map50_95"]
    assert worse is not None and worse < 0.5
    with pytest.raises(ValueError, match="1 frames tallied for 2 references"):
        exact.row(references * 2)


def test_pixel_digest_tells_frames_apart_by_pixels_and_shape() -> None:
    a = np.zeros((4, 6, 3), dtype=np.uint8)
    b = a.copy()
    assert pixel_digest(a) == pixel_digest(b)
    b[0, 0, 0] = 1
    assert pixel_digest(a) != pixel_digest(b)
    assert pixel_digest(a) != pixel_digest(np.zeros((6, 4, 3), dtype=np.uint8))
