"""mAP of detections against reference detections (COCO-style: IoU 0.50:0.95, greedy matching by score).

Used to measure fidelity: the unsplit fp32 model's own detections are the ground truth, so a lossless split
scores 1.0.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["IOU_THRESHOLDS", "average_precision", "box_iou", "mean_average_precision"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N×4 xyxy) with every box in ``b`` (M×4) → N×M."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _match(pred_boxes: np.ndarray, pred_cls: np.ndarray, pred_scores: np.ndarray,
           gt_boxes: np.ndarray, gt_cls: np.ndarray) -> np.ndarray:
    """True-positive flags (N×10): each reference box matched at most once, highest score first."""
    tp = np.zeros((len(pred_boxes), len(IOU_THRESHOLDS)), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(pred_boxes, gt_boxes)
    iou[pred_cls[:, None] != gt_cls[None, :]] = 0.0
    order = np.argsort(-pred_scores, kind="stable")
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt_boxes), dtype=bool)
        for i in order:
            candidates = np.where(~taken & (iou[i] >= thr))[0]
            if len(candidates):
                j = candidates[np.argmax(iou[i, candidates])]
                taken[j] = True
                tp[i, t] = True
    return tp


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO's 101-point interpolated AP: the mean, over recall levels 0, 0.01 … 1, of the best precision reached
    at that recall or beyond (0 where it is never reached)."""
    envelope = np.flip(np.maximum.accumulate(np.flip(precision)))  # best precision at this recall or beyond
    levels = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, levels, side="left")
    reached = idx < len(recall)
    return float(np.where(reached, envelope[np.minimum(idx, len(recall) - 1)], 0.0).mean())


Detection = Tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes N×4, scores N, classes N


def mean_average_precision(
    predictions: Sequence[Detection], references: Sequence[Tuple[np.ndarray, np.ndarray]]
) -> Tuple[Optional[float], Optional[float]]:
    """(mAP50, mAP50-95) of ``predictions`` against ``references`` (boxes, classes), one pair per image.

    Returns ``(None, None)`` when the references hold no box at all (nothing to measure against).
    """
    tps, scores, classes, gt_classes = [], [], [], []
    for (boxes, conf, cls), (gt_boxes, gt_cls) in zip(predictions, references):
        tps.append(_match(boxes, cls, conf, gt_boxes, gt_cls))
        scores.append(conf)
        classes.append(cls)
        gt_classes.append(gt_cls)
    gt_all = np.concatenate(gt_classes) if gt_classes else np.zeros(0)
    if len(gt_all) == 0:
        return None, None
    tp = np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
    conf = np.concatenate(scores) if scores else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0)
    ap: List[np.ndarray] = []
    for c in np.unique(gt_all):
        n_gt = int((gt_all == c).sum())
        mask = cls == c
        order = np.argsort(-conf[mask], kind="stable")
        hits = tp[mask][order]
        if len(hits) == 0:
            ap.append(np.zeros(len(IOU_THRESHOLDS)))
            continue
        cum_tp = np.cumsum(hits, axis=0)
        cum_fp = np.cumsum(~hits, axis=0)
        recall = cum_tp / n_gt
        precision = cum_tp / (cum_tp + cum_fp)
        ap.append(np.array([average_precision(recall[:, t], precision[:, t]) for t in range(len(IOU_THRESHOLDS))]))
    table = np.stack(ap)
    return float(table[:, 0].mean()), float(table.mean())
