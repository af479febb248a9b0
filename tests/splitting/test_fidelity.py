from __future__ import annotations

import numpy as np
import pytest

from splitinfer.splitting.fidelity import box_iou, mean_average_precision

GT = (np.array([[0, 0, 10, 10], [20, 20, 40, 40]], dtype=float), np.array([0, 1]))


def test_identical_detections_score_one() -> None:
    pred = (GT[0], np.array([0.9, 0.8]), GT[1])
    assert mean_average_precision([pred], [GT]) == (pytest.approx(1.0), pytest.approx(1.0))


def test_wrong_class_and_missed_boxes_lower_the_score() -> None:
    wrong_class = (GT[0], np.array([0.9, 0.8]), np.array([1, 0]))
    assert mean_average_precision([wrong_class], [GT]) == (0.0, 0.0)
    only_one = (GT[0][:1], np.array([0.9]), GT[1][:1])
    map50, _ = mean_average_precision([only_one], [GT])
    assert map50 == pytest.approx(0.5)  # class 0 perfect, class 1 missed


def test_a_shifted_box_counts_at_loose_iou_only() -> None:
    shifted = (np.array([[1, 0, 11, 10]], dtype=float), np.array([0.9]), np.array([0]))  # IoU 9/11 ≈ 0.82
    map50, map50_95 = mean_average_precision([shifted], [(GT[0][:1], GT[1][:1])])
    assert map50 == pytest.approx(1.0)
    assert map50_95 == pytest.approx(0.7)  # matched at 0.50..0.80: 7 of 10 thresholds


def test_duplicates_are_false_positives() -> None:
    dup = (np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float), np.array([0.9, 0.8]), np.array([0, 0]))
    map50, _ = mean_average_precision([dup], [(GT[0][:1], GT[1][:1])])
    assert map50 == pytest.approx(1.0)  # the first match reaches recall 1 at precision 1
    low_first = (dup[0], np.array([0.9, 0.95]), np.array([0, 0]))
    assert mean_average_precision([low_first], [(GT[0][:1], GT[1][:1])])[0] == pytest.approx(1.0)


def test_no_reference_boxes_means_no_score() -> None:
    empty = (np.zeros((0, 4)), np.zeros(0, dtype=int))
    assert mean_average_precision([(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], [empty]) == (None, None)


def test_box_iou() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]], dtype=float), np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=float))
    assert iou == pytest.approx(np.array([[1 / 3, 0.0]]))
