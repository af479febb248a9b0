"""Per-layer profiles: what each layer costs on this device, and what each cut costs on the wire.

Pure measurement: no MQTT, no codec import (the caller passes an ``encode``/``decode`` pair), so heads and
tails (and benchmarks) share it. A profile is measured once per model, input size, batch, device (and thread
count), torch version and, for heads, codec settings and codec path (AVX2 kernels or not), and cached as JSON under
``$SPLITINFER_CACHE/profiles`` (default ``~/.cache/splitinfer/profiles``; deployed nodes keep it on a volume).
Measuring is kept short — three timed passes after one warm-up, two calibration frames — because nodes measure
while they already serve (splitinfer.node.background); calibration in service corrects what a short profile misses.

A profile is a plain dict, as it travels in ``DeviceInfo.profile``::

    {"version": 1, "model": <assigned model name>, "fingerprint": <sha256>, "imgsz": 320, "batch": 1,
     "device": "cpu-t1", "num_layers": 23, "presets": {"a": 4, ...},
     "layer_ms": [per layer, one frame],            # batch 1
     "batch_layer_ms": [per layer, per frame],       # at ``batch`` (tails), else absent
     "preprocess_ms": letterbox, "postprocess_ms": NMS,
     "cuts": {"4": {"bytes": ..., "encode_ms": ..., "decode_ms": ...}, ...},   # heads: per codec settings
     "codec": {...}}

Part of the node runtime: Python 3.8.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .model import Model
from .runner import _gather

__all__ = [
    "PROFILE_VERSION",
    "cache_path",
    "calibration_images",
    "device_key",
    "head_profile",
    "measure_cuts",
    "measure_image_codec",
    "measure_layers",
    "measure_postprocess",
    "measure_preprocess",
    "tail_profile",
]

PROFILE_VERSION = 3  # 3: three timed passes, two calibration frames, torch version and codec path in the key


def device_key(device: str) -> str:
    """The accelerator a timing belongs to: ``cuda:0``, or ``cpu-t<threads>`` (CPU timings scale with threads)."""
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    import torch

    return f"cpu-t{torch.get_num_threads()}"


def cache_path(fingerprint: str, imgsz: int, batch: int, device: str, *, kind: str = "layers") -> Path:
    """``<cache>/profiles/<fingerprint>-<imgsz>-<batch>-<device>-torch<version>[-kind].json``."""
    import torch

    root = Path(os.environ.get("SPLITINFER_CACHE", str(Path.home() / ".cache" / "splitinfer")))
    safe = device.replace(":", "_").replace("/", "_")
    version = torch.__version__.split("+")[0]
    suffix = "" if kind == "layers" else f"-{kind}"
    return root / "profiles" / f"{fingerprint[:24]}-{imgsz}-{batch}-{safe}-torch{version}{suffix}.json"


def cached(path: Path, measure: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """The JSON at ``path`` if it is a readable profile of this version, else ``measure()`` written there."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("version") == PROFILE_VERSION:
            return data
    except (OSError, ValueError):
        pass
    data = dict(measure(), version=PROFILE_VERSION)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(data))
        partial.replace(path)
    except OSError:
        pass  # a read-only cache only costs a re-measurement next time
    return data


def _sync(model: Model) -> None:
    if model.device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def measure_layers(model: Model, imgsz: int, batch: int = 1, *, repeats: int = 3, warmup: int = 1) -> List[float]:
    """Milliseconds per layer for one batch of ``batch`` frames (median over ``repeats`` passes), per frame."""
    import torch

    x0 = torch.rand(batch, 3, imgsz, imgsz, device=model.device, dtype=model.dtype)
    samples: List[List[float]] = [[] for _ in range(model.graph.num_layers)]
    with torch.no_grad():
        for k in range(warmup + repeats):
            x: Any = x0
            outputs: Dict[int, Any] = {}
            for i, layer in enumerate(model.layers):
                _sync(model)
                t = time.perf_counter()
                x = layer(_gather(layer, i, x, outputs))
                _sync(model)
                if k >= warmup:
                    samples[i].append((time.perf_counter() - t) * 1000.0 / batch)
                outputs[i] = x
    return [round(statistics.median(s), 4) for s in samples]


def measure_preprocess(images: Sequence[Any], imgsz: int) -> float:
    """Milliseconds to letterbox one camera frame into the network input (median over ``images``)."""
    from .preprocess import to_batch

    times = []
    for image in images:
        t = time.perf_counter()
        to_batch([image], imgsz)
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 4)


def measure_postprocess(model: Model, images: Sequence[Any], imgsz: int, *, conf: float = 0.25) -> float:
    """Milliseconds of NMS and box scaling per frame on the model's outputs for ``images``."""
    import torch

    from .postprocess import postprocess
    from .preprocess import to_batch

    times = []
    with torch.no_grad():
        for image in images:
            x, frames = to_batch([image], imgsz)
            out = model(x.to(device=model.device, dtype=model.dtype))
            t = time.perf_counter()
            postprocess(out, frames, conf=conf, end2end=model.end2end, names=model.names)
            times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 4)


def measure_cuts(
    model: Model,
    images: Sequence[Any],
    imgsz: int,
    *,
    encode: Callable[[Any], bytes],
    decode: Optional[Callable[[bytes], Any]] = None,
    cuts: Optional[Sequence[int]] = None,
) -> Dict[str, Dict[str, float]]:
    """Per cut (as a string key): mean payload ``bytes`` per frame, ``encode_ms`` and ``decode_ms`` per frame,
    over the calibration ``images``. ``encode`` maps a FeatureSet to bytes (a fresh codec state per call is the
    caller's business: with temporal delta coding, pass an encoder that measures keyframes and deltas alike)."""
    import torch

    from splitinfer.features import FeatureSet

    from .preprocess import to_batch

    graph = model.graph
    wanted = list(cuts) if cuts is not None else list(graph.cuts)
    totals: Dict[int, Dict[str, List[float]]] = {c: {"bytes": [], "encode_ms": [], "decode_ms": []} for c in wanted}
    last = max(wanted)
    with torch.no_grad():
        for k, image in enumerate(images):
            x, frames = to_batch([image], imgsz, sources=["calibration"], seqs=[k])
            x = x.to(device=model.device, dtype=model.dtype)
            outputs: Dict[int, Any] = {}
            y: Any = x
            for i in range(last):
                layer = model.layers[i]
                y = layer(_gather(layer, i, y, outputs))
                outputs[i] = y
            for c in wanted:
                live = graph.live_set(c)
                features = FeatureSet(cut=c, layers=live, tensors=tuple(outputs[i] for i in live),
                                      input_shape=(imgsz, imgsz), model=model.fingerprint, frames=tuple(frames))
                t = time.perf_counter()
                blob = encode(features)
                t1 = time.perf_counter()
                totals[c]["encode_ms"].append((t1 - t) * 1000.0)
                totals[c]["bytes"].append(float(len(blob)))
                if decode is not None:
                    decode(blob)
                    totals[c]["decode_ms"].append((time.perf_counter() - t1) * 1000.0)
    return {str(c): {k: round(sum(v) / len(v), 4) if v else 0.0 for k, v in t.items()} for c, t in totals.items()}


def calibration_images(count: int = 2) -> List[Any]:
    """A few frames of the synthetic source (Ultralytics' bundled images panned across 1280×720)."""
    from .samples import synthetic_frames

    frames = [image for image, _ in synthetic_frames(2 * count)]
    return frames[::2][:count]


def _model_facts(model: Model, name: str, imgsz: int, batch: int, device: str) -> Dict[str, Any]:
    try:
        presets = model.graph.presets()
    except Exception:  # a model without the YOLO shape has numeric cuts only
        presets = {}
    return {"model": name, "fingerprint": model.fingerprint, "imgsz": imgsz, "batch": batch, "device": device,
            "num_layers": model.graph.num_layers, "presets": presets}


def head_profile(
    model: Model,
    *,
    name: str,
    imgsz: int,
    batch: int,
    codec: Dict[str, Any],
    make_codec: Callable[[int], Any],
    codec_path: str = "",
    tables: Sequence[str] = (),
    images: Optional[Sequence[Any]] = None,
    image_codec: Optional[Tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]] = None,
) -> Dict[str, Any]:
    """What a head reports: its layer times, letterbox time, and per cut the payload bytes and codec times
    with ``codec`` settings (``make_codec(cut)`` gives a fresh codec object for layer ``cut``, with
    ``encode``/``decode``: calibrated where a table covers the cut). Cached per model fingerprint, ``imgsz``,
    ``batch``, device, torch version, codec settings, the calibration ``tables`` (their digests) and ``codec_path``
    (which implementation runs them, e.g. ``splitinfer.codec.simd.status()``); ``name`` is the model as the
    assignment names it. The profile also holds what local mode costs here (``whole_postprocess_ms``; the layers
    are in ``layer_ms``) and, with ``image_codec`` = (format, encode a letterboxed frame, decode), what offload
    would send (``images``: bytes, encode and decode ms per frame)."""
    import hashlib

    device = device_key(str(model.device))
    digest = hashlib.sha256(json.dumps([codec, codec_path, image_codec[0] if image_codec else None, list(tables)],
                                       sort_keys=True).encode()).hexdigest()[:10]
    path = cache_path(model.fingerprint, imgsz, batch, device, kind=f"head-{digest}")

    def measure() -> Dict[str, Any]:
        shots = list(images) if images is not None else calibration_images()
        encoders: Dict[int, Any] = {}
        decoders: Dict[int, Any] = {}
        current = [0]  # the cut just encoded: measure_cuts decodes each blob right after encoding it

        def encode(features: Any) -> bytes:  # one codec per cut: temporal delta state is per stream
            current[0] = features.cut
            if features.cut not in encoders:
                encoders[features.cut] = make_codec(features.cut)
            return bytes(encoders[features.cut].encode(features))

        def decode(blob: bytes) -> Any:
            if current[0] not in decoders:
                decoders[current[0]] = make_codec(current[0])
            return decoders[current[0]].decode(blob)

        data = dict(
            _model_facts(model, name, imgsz, batch, device),
            layer_ms=measure_layers(model, imgsz, batch), preprocess_ms=measure_preprocess(shots, imgsz),
            cuts=measure_cuts(model, shots, imgsz, encode=encode, decode=decode), codec=dict(codec),
            whole_postprocess_ms=measure_postprocess(model, shots, imgsz),
        )
        if image_codec is not None:
            data["images"] = {image_codec[0]: measure_image_codec(shots, imgsz, *image_codec[1:])}
        return data

    return dict(cached(path, measure), model=name, codec=dict(codec))


def measure_image_codec(images: Sequence[Any], imgsz: int, encode: Callable[[Any], bytes],
                        decode: Callable[[bytes], Any]) -> Dict[str, float]:
    """Mean bytes, encode and decode milliseconds per letterboxed frame with an image codec (offload's cost)."""
    from .preprocess import letterboxed_uint8

    sizes, enc, dec = [], [], []
    for image in images:
        frame = letterboxed_uint8(image, imgsz)
        t = time.perf_counter()
        data = encode(frame)
        t1 = time.perf_counter()
        decode(data)
        enc.append((t1 - t) * 1000.0)
        dec.append((time.perf_counter() - t1) * 1000.0)
        sizes.append(float(len(data)))
    return {"bytes": round(statistics.fmean(sizes), 1), "encode_ms": round(statistics.median(enc), 4),
            "decode_ms": round(statistics.median(dec), 4)}


def tail_profile(model: Model, *, name: str, imgsz: int, batch: int,
                 images: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """What a tail reports: layer times for one frame, per frame at its ``batch`` (throughput), and NMS time.
    Cached per model fingerprint, ``imgsz``, ``batch`` and device."""
    device = device_key(str(model.device))
    path = cache_path(model.fingerprint, imgsz, batch, device, kind="tail")

    def measure() -> Dict[str, Any]:
        shots = list(images) if images is not None else calibration_images()
        data = dict(_model_facts(model, name, imgsz, batch, device), layer_ms=measure_layers(model, imgsz, 1),
                    postprocess_ms=measure_postprocess(model, shots, imgsz))
        if batch > 1:
            data["batch_layer_ms"] = measure_layers(model, imgsz, batch, repeats=1, warmup=1)
        return data

    return dict(cached(path, measure), model=name)
