"""From raw model output to boxes in original frame coordinates, with Ultralytics' own NMS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from splitinfer.features import FrameMeta

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Detections", "postprocess"]


@dataclass(frozen=True)
class Detections:
    """One frame's detections: ``boxes`` N×4 xyxy in original frame pixels, ``scores`` N, ``classes`` N."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    frame: FrameMeta = field(default_factory=FrameMeta)
    names: Dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.frame.source,
            "seq": self.frame.seq,
            "timestamp": self.frame.timestamp,
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "classes": [int(c) for c in self.classes],
            "names": [self.names.get(int(c), str(int(c))) for c in self.classes],
            "scores": [round(float(s), 4) for s in self.scores],
        }


def _nms() -> Any:
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # Ultralytics before 8.3.1xx kept it in ops
        from ultralytics.utils.ops import non_max_suppression  # type: ignore[no-redef,attr-defined]
    return non_max_suppression


def postprocess(
    output: Any,
    frames: Sequence[FrameMeta],
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    end2end: bool = False,
    names: Optional[Dict[int, str]] = None,
) -> List[Detections]:
    """NMS (or, for end-to-end heads such as YOLO26's, a confidence filter) then map boxes back to each frame."""
    preds = _nms()(output, conf, iou, max_det=max_det, end2end=end2end)
    results = []
    for det, frame in zip(preds, frames):
        det = det.detach().float().cpu()
        boxes = det[:, :4].clone()
        if frame.orig_shape != (0, 0):
            boxes[:, [0, 2]] = (boxes[:, [0, 2]] - frame.pad[0]) / frame.ratio
            boxes[:, [1, 3]] = (boxes[:, [1, 3]] - frame.pad[1]) / frame.ratio
            h, w = frame.orig_shape
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, h)
        results.append(Detections(
            boxes=boxes.numpy(),
            scores=det[:, 4].numpy(),
            classes=det[:, 5].numpy().astype("int64"),
            frame=frame,
            names=dict(names or {}),
        ))
    return results
