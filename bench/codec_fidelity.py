"""Codec fidelity harness: bits/value and mAP50 of a codec setting against the unsplit fp32 model.

The ground truth is the unsplit fp32 model's own detections at conf 0.25 (as ``splitctl bench codec`` does);
the codec's detections come from the tail run on decoded features. Frames are ultralytics' bundled
``bus.jpg`` and ``zidane.jpg`` plus flips, crops and rescales of them (a small but varied set).

    python bench/codec_fidelity.py --weights /tmp/codec/fall_detection/models/best.pt --cut 10 --bits 2 3 4 8

Self-contained on purpose (its own head/tail loop, letterbox, NMS call and mAP50) so it can tune the codec
before ``splitinfer.split`` exists; it writes bench/results/codec_fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

import numpy as np
import torch

from splitinfer import FeatureSet, FrameMeta

if TYPE_CHECKING:
    from splitinfer import Codec

RESULTS = Path(__file__).parent / "results"


def test_frames() -> List[np.ndarray]:
    """Bundled images and simple variations of them (BGR, HxWx3 uint8)."""
    import cv2
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    frames: List[np.ndarray] = []
    for name in ("bus.jpg", "zidane.jpg"):
        img = cv2.imread(str(assets / name))
        h, w = img.shape[:2]
        frames += [
            img,
            img[:, ::-1].copy(),
            img[: h * 3 // 4, : w * 3 // 4].copy(),
            img[h // 4 :, w // 4 :].copy(),
            cv2.resize(img, (w // 2, h // 2)),
            cv2.resize(img, (w * 3 // 4, h * 3 // 4))[:, ::-1].copy(),
            img[h // 8 : h * 7 // 8, w // 8 : w * 7 // 8].copy(),
            img[:, w // 3 :].copy(),
            cv2.convertScaleAbs(img, alpha=0.6, beta=0),
            cv2.convertScaleAbs(img, alpha=1.3, beta=10)[:, ::-1].copy(),
            cv2.GaussianBlur(img, (5, 5), 0),
            cv2.resize(img, (w * 2 // 3, h * 2 // 3))[h // 6 :].copy(),
        ]
    return frames


def letterbox(img: np.ndarray, imgsz: int) -> Tuple[torch.Tensor, FrameMeta]:
    from ultralytics.data.augment import LetterBox

    h, w = img.shape[:2]
    out = LetterBox((imgsz, imgsz), auto=False)(image=img)
    x = torch.from_numpy(np.ascontiguousarray(out[..., ::-1].transpose(2, 0, 1))).float().div(255)[None]
    r = min(imgsz / h, imgsz / w)
    pad = ((imgsz - round(w * r)) / 2, (imgsz - round(h * r)) / 2)
    return x, FrameMeta(source="bench", orig_shape=(h, w), ratio=r, pad=pad)


def live_layers(model: torch.nn.Module, cut: int) -> List[int]:
    """Layers before ``cut`` whose outputs the tail still reads (always including ``cut - 1``)."""
    live = {cut - 1}
    for m in model.model[cut:]:
        for f in [m.f] if isinstance(m.f, int) else m.f:
            j = m.i + f if f < 0 else f
            if j < cut:
                live.add(j)
    return sorted(live)


@torch.no_grad()
def run_head(model: torch.nn.Module, x: torch.Tensor, cut: int) -> Dict[int, torch.Tensor]:
    y: List[torch.Tensor] = []
    for m in model.model[:cut]:
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x)
    return {i: y[i] for i in live_layers(model, cut)}


@torch.no_grad()
def run_tail(model: torch.nn.Module, live: Dict[int, torch.Tensor], cut: int) -> torch.Tensor:
    y: Dict[int, torch.Tensor] = dict(live)
    x = live[cut - 1]
    for m in model.model[cut:]:
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y[m.i] = x
    return x[0] if isinstance(x, (tuple, list)) else x


def detect(model: torch.nn.Module, raw: torch.Tensor) -> torch.Tensor:
    from ultralytics.utils.nms import non_max_suppression

    return non_max_suppression(raw, conf_thres=0.001, iou_thres=0.7, max_det=300)[0]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def map50(preds: Sequence[torch.Tensor], truths: Sequence[torch.Tensor]) -> float:
    """mAP at IoU 0.5 over classes present in the truth (all-point interpolated AP, COCO-style matching)."""
    classes = sorted({int(c) for t in truths for c in t[:, 5].tolist()})
    aps = []
    for c in classes:
        scores: List[float] = []
        hits: List[int] = []
        n_true = 0
        for p, t in zip(preds, truths):
            t = t[t[:, 5] == c]
            p = p[p[:, 5] == c]
            p = p[p[:, 4].argsort(descending=True)]
            n_true += len(t)
            used = torch.zeros(len(t), dtype=torch.bool)
            iou = box_iou(p[:, :4], t[:, :4]) if len(t) and len(p) else None
            for k in range(len(p)):
                scores.append(float(p[k, 4]))
                hit = 0
                if iou is not None:
                    cand = iou[k].clone()
                    cand[used] = -1
                    j = int(cand.argmax())
                    if cand[j] >= 0.5:
                        used[j] = True
                        hit = 1
                hits.append(hit)
        order = np.argsort(-np.asarray(scores), kind="stable")
        tp = np.cumsum(np.asarray(hits)[order]) if hits else np.zeros(0)
        recall = tp / max(n_true, 1)
        precision = tp / np.arange(1, len(tp) + 1)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[1.0], precision, [0.0]])
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
    return float(np.mean(aps)) if aps else 1.0


class Fixture:
    """The model, frames, live tensors and ground truth, computed once."""

    def __init__(self, weights: str, cut: int, imgsz: int = 640) -> None:
        if weights.endswith(".pt"):
            from ultralytics import YOLO

            self.model = YOLO(weights).model.float().eval()
        else:
            from ultralytics.nn.tasks import DetectionModel

            self.model = DetectionModel(weights, verbose=False).float().eval()
        self.cut = cut
        self.lives: List[Dict[int, torch.Tensor]] = []
        self.truths: List[torch.Tensor] = []
        self.metas: List[FrameMeta] = []
        for img in test_frames():
            x, meta = letterbox(img, imgsz)
            live = run_head(self.model, x, cut)
            full = detect(self.model, run_tail(self.model, live, cut))
            self.lives.append(live)
            self.truths.append(full[full[:, 4] >= 0.25])
            self.metas.append(meta)
        self.imgsz = imgsz

    def featureset(self, k: int) -> FeatureSet:
        live = self.lives[k]
        layers = tuple(sorted(live))
        return FeatureSet(
            cut=self.cut,
            layers=layers,
            tensors=tuple(live[i] for i in layers),
            input_shape=(self.imgsz, self.imgsz),
            frames=(self.metas[k],),
        )

    def evaluate(self, codec: Codec) -> Dict[str, float]:
        n_bits = 0
        n_values = 0
        preds = []
        for k in range(len(self.lives)):
            fs = self.featureset(k)
            blob = codec.encode(fs)
            n_bits += 8 * len(blob)
            n_values += fs.numel
            out = type(codec)().decode(blob)
            preds.append(detect(self.model, run_tail(self.model, dict(zip(out.layers, out.tensors)), self.cut)))
        return {"bits_per_value": n_bits / n_values, "map50": map50(preds, self.truths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="yolo11n.yaml")
    parser.add_argument("--cut", type=int, default=10, help="first tail layer (YOLOv8s cut b = 10, yolo11n = 11)")
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8, 16])
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    fx = Fixture(args.weights, args.cut)
    n_true = sum(len(t) for t in fx.truths)
    print(
        f"{len(fx.lives)} frames, {n_true} reference boxes, live layers {sorted(fx.lives[0])}, "
        f"{fx.featureset(0).numel} values/frame ({time.perf_counter() - t0:.1f} s)"
    )
    rows = []
    from splitinfer import Codec

    for bits in args.bits:
        codec = Codec(bits=bits)
        row = {"bits": bits, **codec.describe(), **fx.evaluate(codec)}
        rows.append(row)
        print(f"bits={bits:2d}  {row['bits_per_value']:.3f} bits/value  mAP50 {row['map50']:.3f}")
    RESULTS.mkdir(exist_ok=True)
    report = {
        "weights": args.weights,
        "cut": args.cut,
        "frames": len(fx.lives),
        "reference_boxes": n_true,
        "rows": rows,
    }
    (RESULTS / "codec_fidelity.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
