"""``splitctl bench codec``: what the codec costs and how faithful it stays, frame by frame.

Fidelity takes the unsplit fp32 model's own detections (conf 0.25) as ground truth and scores the split+codec
detections (conf 0.001, as validation does) with mAP50 and mAP50-95. The JPEG q90 size of the same letterboxed
frame is the baseline a camera shipping frames would pay.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

from ..codec import simd

__all__ = ["FrameResult", "run_codec_bench"]


@dataclass(frozen=True)
class FrameResult:
    frame: str
    values: int
    payload_bytes: int
    bits_per_value: float
    jpeg_bytes: int
    head_ms: float
    encode_ms: float
    decode_ms: float
    tail_ms: float
    whole_ms: float


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def run_codec_bench(
    model_path: str,
    source: str,
    *,
    cut: str = "b",
    imgsz: int = 640,
    limit: Optional[int] = None,
    codec_options: Optional[Dict[str, Any]] = None,
    conf: float = 0.25,
    device: str = "cpu",
    on_frame: Optional[Callable[[FrameResult], None]] = None,
) -> Dict[str, Any]:
    """Run every frame of ``source`` through head → encode → decode → tail, and the whole model beside it."""
    import cv2
    import torch

    from splitinfer.codec import Codec
    from splitinfer.head.sources import open_source
    from splitinfer.splitting import load_model, postprocess, split, to_batch
    from splitinfer.splitting.fidelity import mean_average_precision
    from splitinfer.splitting.model import default_imgsz
    from splitinfer.splitting.preprocess import letterboxed_uint8

    model = load_model(model_path, device=device)
    imgsz = default_imgsz(model, imgsz)
    head, tail = split(model, cut)
    codec = Codec(**(codec_options or {}))
    decoder = Codec()
    results: List[FrameResult] = []
    predictions, references = [], []
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    for frame in open_source(source, limit=limit):
        x, metas = to_batch([frame.image], imgsz, seqs=[frame.index])
        x = x.to(model.device)
        sync()
        t = time.perf_counter()
        whole = model(x)
        sync()
        whole_ms = _ms(t)
        t = time.perf_counter()
        features = head(x, metas)
        sync()
        head_ms = _ms(t)
        t = time.perf_counter()
        blob = codec.encode(features)
        encode_ms = _ms(t)
        t = time.perf_counter()
        decoded = decoder.decode(blob, device=str(model.device))
        sync()
        decode_ms = _ms(t)
        t = time.perf_counter()
        out = tail(decoded)
        sync()
        tail_ms = _ms(t)
        names = model.names
        ref = postprocess(whole, metas, conf=conf, end2end=model.end2end, names=names)[0]
        pred = postprocess(out, metas, conf=0.001, end2end=model.end2end, names=names)[0]
        references.append((ref.boxes, ref.classes))
        predictions.append((pred.boxes, pred.scores, pred.classes))
        ok, jpeg = cv2.imencode(".jpg", letterboxed_uint8(frame.image, imgsz), [cv2.IMWRITE_JPEG_QUALITY, 90])
        result = FrameResult(
            frame=frame.name or str(frame.index), values=features.numel, payload_bytes=len(blob),
            bits_per_value=8.0 * len(blob) / features.numel, jpeg_bytes=len(jpeg) if ok else 0,
            head_ms=head_ms, encode_ms=encode_ms, decode_ms=decode_ms, tail_ms=tail_ms, whole_ms=whole_ms,
        )
        results.append(result)
        if on_frame is not None:
            on_frame(result)
    if not results:
        from splitinfer.errors import SourceError

        raise SourceError(f"source {source!r} gave no frames")
    map50, map50_95 = mean_average_precision(predictions, references)

    def mean(key: str) -> float:
        return float(statistics.fmean(getattr(r, key) for r in results))

    total_bytes = sum(r.payload_bytes for r in results)
    total_values = sum(r.values for r in results)
    return {
        "model": model.source, "cut": head.cut, "live_layers": list(head.live), "imgsz": imgsz,
        "device": str(model.device), "kernels": simd.status(),
        "codec": codec.describe() if hasattr(codec, "describe") else dict(codec_options or {}),
        "frames": len(results), "reference_boxes": int(sum(len(r[0]) for r in references)),
        "bits_per_value": 8.0 * total_bytes / total_values,
        "payload_bytes_mean": mean("payload_bytes"), "jpeg_bytes_mean": mean("jpeg_bytes"),
        "map50": map50, "map50_95": map50_95,
        "encode_ms_mean": mean("encode_ms"), "decode_ms_mean": mean("decode_ms"),
        "head_ms_mean": mean("head_ms"), "tail_ms_mean": mean("tail_ms"), "whole_ms_mean": mean("whole_ms"),
        "codec_share_of_head": (mean("encode_ms") + mean("decode_ms")) / mean("head_ms"),
        "per_frame": [asdict(r) for r in results],
    }
