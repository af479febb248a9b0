"""``splitctl bench codec``: rate and fidelity of the codec on the user's own frames, beside image codecs.

Every frame of the source runs head → encode → decode → tail, and the whole model beside it; fidelity and rate as
:mod:`splitinfer.bench.rate_fidelity` defines them. The same letterboxed frames go through JPEG, WebP and AVIF at a
sweep of qualities, and the report reads off, per format, what it needs to reach our mAP50-95.

The codec is the sensitivity-weighted one (wire format 2) unless ``codec_options`` holds ``bits`` (then wire
format 1: affine quantization, bit planes, zstd; no table). Its table comes from a file, or is calibrated here on
frames it never measures (:class:`Calibration`): another folder, or the first frames of the source itself.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ..codec import simd
from ..errors import BenchError, SourceError
from .rate_fidelity import (
    IMAGE_CODECS,
    REFERENCE_CONF,
    ImageBaselines,
    Tally,
    detections,
    image_codecs,
    matched_per_codec,
    pixel_digest,
    reference,
)

__all__ = ["CALIBRATION_FRAMES", "Calibration", "FrameResult", "run_codec_bench"]

CALIBRATION_FRAMES = 8


@dataclass(frozen=True)
class FrameResult:
    frame: str
    values: int
    payload_bytes: int
    bits_per_value: float
    head_ms: float
    encode_ms: float
    decode_ms: float
    tail_ms: float
    whole_ms: float


@dataclass(frozen=True)
class Calibration:
    """Where the weighted codec's table comes from: ``table`` (a file), else calibrated on the first ``frames``
    frames of ``on`` (any source: a folder, a video…), else on the first ``frames`` frames of the measured source,
    which are then not measured. A measured frame whose pixels equal a calibration frame's is left out (and
    counted) either way."""

    table: Optional[str] = None
    on: Optional[str] = None
    frames: int = CALIBRATION_FRAMES

    def __post_init__(self) -> None:
        if self.table is not None and self.on is not None:
            raise BenchError("give a calibration table (--table) or frames to calibrate on (--calibrate-on), not both")
        if self.frames < 1:
            raise BenchError(f"--calibration-frames {self.frames}: at least one frame is needed")


@dataclass
class _Calibrated:
    """The table and what the report says of it."""

    table: Any
    how: str  # "table", "calibrate-on" or "first frames of the source"
    line: str
    frames: List[str] = field(default_factory=list)
    digests: Set[bytes] = field(default_factory=set)
    seconds: float = 0.0

    def describe(self) -> Dict[str, Any]:
        return {"how": self.how, "line": self.line, "frames": self.frames, "seconds": round(self.seconds, 1),
                "table": self.table.describe()}


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _check_table(table: Any, model: Any, cut: int, imgsz: int, path: str) -> None:
    if table.model and table.model != model.fingerprint:
        raise BenchError(f"--table {path}: calibrated for model {table.model[:12]}…, this is model "
                         f"{model.fingerprint[:12]}…; calibrate this model (leave --table out)")
    if table.cut != cut or table.imgsz != imgsz:
        raise BenchError(f"--table {path}: made for cut {table.cut} at {table.imgsz} px, measuring cut {cut} at "
                         f"{imgsz} px; pass --cut {table.cut} --imgsz {table.imgsz}, or leave --table out")


def _calibrate(
    model: Any, cut: str, imgsz: int, frames: Iterator[Any], how: str, where: str, say: Callable[[str], None]
) -> _Calibrated:
    from splitinfer.splitting.sensitivity import calibrate

    names: List[str] = []
    digests: Set[bytes] = set()

    def images() -> Iterator[Any]:
        for frame in frames:
            names.append(frame.name or str(frame.index))
            digests.add(pixel_digest(frame.image))
            say(f"calibrating on frame {len(names)} ({names[-1]})")
            yield frame.image

    start = time.perf_counter()
    table = calibrate(model, cut, images(), imgsz=imgsz)
    line = f"calibrated on {len(names)} frames ({where}), never measured"
    return _Calibrated(table, how, line, names, digests, time.perf_counter() - start)


def _table(
    model: Any, head: Any, cut: str, imgsz: int, calibration: Calibration, frames: Iterator[Any], source: str,
    say: Callable[[str], None],
) -> _Calibrated:
    from splitinfer.codec import CalibrationTable
    from splitinfer.head.sources import open_source

    if calibration.table is not None:
        table = CalibrationTable.load(calibration.table)
        _check_table(table, model, head.cut, imgsz, calibration.table)
        seen = table.meta.get("frames", "?")
        return _Calibrated(table, "table", f"table {calibration.table} (calibrated on {seen} frames this run does not "
                                           "know: their disjointness from these cannot be checked)")
    if calibration.on is not None:
        return _calibrate(model, cut, imgsz, open_source(calibration.on, limit=calibration.frames), "calibrate-on",
                          calibration.on, say)
    first = itertools.islice(frames, calibration.frames)  # the measurement goes on from frame N
    return _calibrate(model, cut, imgsz, first, "first frames of the source",
                      f"the first {calibration.frames} of {source}", say)


def _codec(codec_options: Dict[str, Any], calibrated: Optional[_Calibrated]) -> Tuple[Any, Any]:
    from splitinfer.codec import Codec

    table = calibrated.table if calibrated is not None else None
    return Codec(table=table, **codec_options), Codec(table=table)


def _describe(codec: Any) -> Dict[str, Any]:
    """The encoder's settings that apply to its scheme."""
    described: Dict[str, Any] = codec.describe()
    if codec.table is None:
        return {k: v for k, v in described.items() if k != "quality"}
    return {k: described[k] for k in ("scheme", "quality", "delta", "keyframe_interval", "table", "max_values",
                                      "max_bytes")}


def _scheme(codec: Any) -> str:
    if codec.table is not None:
        return f"wire format 2: sensitivity-weighted, range-coded, quality {codec.settings.quality}"
    return f"wire format 1 (--bits {codec.settings.bits}): affine per {codec.settings.granularity}, bit planes, zstd"


def run_codec_bench(
    model_path: str,
    source: str,
    *,
    cut: str = "b",
    imgsz: int = 640,
    limit: Optional[int] = None,
    codec_options: Optional[Dict[str, Any]] = None,
    calibration: Optional[Calibration] = None,
    images: Sequence[str] = IMAGE_CODECS,
    conf: float = REFERENCE_CONF,
    device: str = "cpu",
    on_frame: Optional[Callable[[FrameResult], None]] = None,
    say: Callable[[str], None] = lambda line: None,
) -> Dict[str, Any]:
    """Measure ``source`` (at most ``limit`` measured frames) at ``cut``.

    ``codec_options`` with ``bits``: wire format 1; without: wire format 2 (``quality``, ``keyframe_interval``…),
    its table from ``calibration`` (default: the first :data:`CALIBRATION_FRAMES` frames of ``source``).
    ``images``: the image codecs to compare with (those Pillow lacks are skipped and named).
    """
    import torch

    from splitinfer.head.sources import open_source
    from splitinfer.splitting import load_model, split
    from splitinfer.splitting.model import default_imgsz

    options = dict(codec_options or {})
    if "bits" in options and calibration is not None:
        raise BenchError("--bits selects wire format 1, which needs no calibration table; drop --table, "
                         "--calibrate-on and --calibration-frames, or drop --bits")
    model = load_model(model_path, device=device)
    imgsz = default_imgsz(model, imgsz)
    head, tail = split(model, cut)
    kinds, skipped = image_codecs(images)
    frames = open_source(source)
    calibrated = None
    if "bits" not in options:
        calibrated = _table(model, head, cut, imgsz, calibration or Calibration(), frames, source, say)
    encoder, decoder = _codec(options, calibrated)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    measured = _Measured(ImageBaselines(kinds))
    for frame in frames:
        if limit is not None and len(measured.results) >= limit:
            break
        if calibrated is not None and pixel_digest(frame.image) in calibrated.digests:
            measured.left_out.append(frame.name or str(frame.index))
            continue
        result = measured.frame(model, head, tail, encoder, decoder, frame, imgsz, conf, sync)
        if on_frame is not None:
            on_frame(result)
    if not measured.results:
        raise _nothing_measured(source, calibrated, measured.left_out)
    return measured.report(model, head, imgsz, encoder, calibrated, skipped)


def _nothing_measured(source: str, calibrated: Optional[_Calibrated], left_out: List[str]) -> SourceError:
    why = []
    if calibrated is not None and calibrated.how == "first frames of the source":
        why.append(f"its first {len(calibrated.frames)} calibrated (--calibration-frames); give more frames, "
                   "--calibrate-on DIR or --table FILE")
    if left_out:
        why.append(f"{len(left_out)} equal to calibration frames, left out")
    return SourceError(f"source {source!r} gave no frames to measure" + (f" ({'; '.join(why)})" if why else ""),
                       source=source)


class _Measured:
    """What the frames measured so far gave: per-frame results, references, our tally and the image codecs'."""

    def __init__(self, image: ImageBaselines) -> None:
        self.results: List[FrameResult] = []
        self.references: List[Any] = []
        self.ours = Tally(codec="ours")
        self.image = image
        self.left_out: List[str] = []

    def frame(self, model: Any, head: Any, tail: Any, encoder: Any, decoder: Any, frame: Any, imgsz: int, conf: float,
              sync: Callable[[], None]) -> FrameResult:
        from splitinfer.splitting import to_batch
        from splitinfer.splitting.preprocess import letterboxed_uint8

        x, metas = to_batch([frame.image], imgsz, seqs=[frame.index])
        x = x.to(model.device)
        if not self.results:  # warm-up, untimed and uncoded (an encode would start delta state)
            model(x)
            tail(head(x, metas))
        times: Dict[str, float] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            sync()
            t = time.perf_counter()
            out = fn()
            sync()
            times[name] = _ms(t)
            return out

        whole = timed("whole", lambda: model(x))
        features = timed("head", lambda: head(x, metas))
        blob = timed("encode", lambda: encoder.encode(features))
        decoded = timed("decode", lambda: decoder.decode(blob, device=str(model.device)))
        out = timed("tail", lambda: tail(decoded))
        self.references.append(reference(model, whole, metas, conf))
        self.ours.add(len(blob), detections(model, out, metas))
        self.image.add(model, letterboxed_uint8(frame.image, imgsz), metas)
        result = FrameResult(
            frame=frame.name or str(frame.index), values=features.numel, payload_bytes=len(blob),
            bits_per_value=8.0 * len(blob) / features.numel, head_ms=times["head"], encode_ms=times["encode"],
            decode_ms=times["decode"], tail_ms=times["tail"], whole_ms=times["whole"],
        )
        self.results.append(result)
        return result

    def report(self, model: Any, head: Any, imgsz: int, encoder: Any, calibrated: Optional[_Calibrated],
               skipped: Dict[str, str]) -> Dict[str, Any]:
        results = self.results
        ours = self.ours.row(self.references)
        curve = self.image.rows(self.references)

        def mean(key: str) -> float:
            return float(statistics.fmean(getattr(r, key) for r in results))

        total_values = sum(r.values for r in results)
        return {
            "model": model.source, "cut": head.cut, "live_layers": list(head.live), "imgsz": imgsz,
            "device": str(model.device), "kernels": simd.status(), "scheme": _scheme(encoder),
            "codec": _describe(encoder), "calibration": calibrated.describe() if calibrated is not None else None,
            "frames": len(results), "left_out_as_calibration_frames": self.left_out,
            "reference_boxes": int(sum(len(b) for b, _ in self.references)),
            "bits_per_value": 8.0 * sum(r.payload_bytes for r in results) / total_values,
            "payload_bytes_mean": mean("payload_bytes"), "payload_bytes_max": max(r.payload_bytes for r in results),
            "map50": ours["map50"], "map50_95": ours["map50_95"],
            "encode_ms_mean": mean("encode_ms"), "decode_ms_mean": mean("decode_ms"),
            "head_ms_mean": mean("head_ms"), "tail_ms_mean": mean("tail_ms"), "whole_ms_mean": mean("whole_ms"),
            "codec_share_of_head": (mean("encode_ms") + mean("decode_ms")) / mean("head_ms"),
            "image": {"curve": curve, "skipped": skipped,
                      "at_our_map50_95": matched_per_codec(curve, ours["map50_95"])},
            "per_frame": [asdict(r) for r in results],
        }

