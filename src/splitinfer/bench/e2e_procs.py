"""The small programs ``splitctl bench e2e`` runs inside the namespaces besides the real nodes:

- ``collect``: reads a head's detections and its latest assignment from the broker, prints them as JSON;
- ``jpeg-head`` / ``jpeg-tail``: the JPEG baseline, letterboxed frames sent as JPEG q90 and the whole model
  run on the tail;
- ``whole``: the other baseline, the whole model on the head with no network.

Every program prints one JSON object on stdout: ``records`` (per frame: ``e2e_ms``, ``payload_bytes``, ...).
Run as ``python -m splitinfer.bench.e2e_procs PROGRAM --options``.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from typing import Any, Dict, List, Optional

__all__ = ["main"]

_JPEG_HEADER = struct.Struct("<dIIIfff")  # capture wall time, seq, orig h, orig w, ratio, pad x, pad y


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


PREDICTION_GRACE_S = 10.0


def _client(url: str, name: str) -> Any:
    from splitinfer.broker.client import MqttClient
    from splitinfer.broker.config import BrokerConfig

    return MqttClient(BrokerConfig.from_url(url, client_id=name))


def collect(args: argparse.Namespace) -> Dict[str, Any]:
    """Detections of ``--head`` until ``--frames`` arrived, the head process is done (``--done-file``) and quiet,
    or ``--timeout``; plus the head's assignments (waiting up to PREDICTION_GRACE_S for one with a prediction)."""
    import os

    from splitinfer.broker.topics import Topics

    topics = Topics(args.fleet)
    client = _client(args.broker, f"{args.fleet}-collector")
    detections = client.subscribe(topics.detections(args.head), maxsize=100_000, drop="newest")
    assigns = client.subscribe(topics.assign(args.head), qos=1, maxsize=1000)
    client.connect(timeout=10)
    records: List[Dict[str, Any]] = []
    assignments: List[Dict[str, Any]] = []
    deadline = time.monotonic() + args.timeout
    quiet_since: Optional[float] = None
    try:
        while time.monotonic() < deadline and len(records) < args.frames:
            assignments += [json.loads(m.payload) for m in assigns.drain() if m.payload]
            msg = detections.get(timeout=0.2)
            if msg is not None:
                records.append(json.loads(msg.payload))
                quiet_since = None
            elif args.done_file and os.path.exists(args.done_file):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3.0:
                    break
        assignments += [json.loads(m.payload) for m in assigns.drain() if m.payload]
        # a short run can end before the coordinator has both profiles and re-plans with a prediction: give it
        # a moment (the head published its profile before its first frame), so the row can compare the two
        grace = min(deadline, time.monotonic() + PREDICTION_GRACE_S)
        while not any(a.get("predicted_ms") is not None for a in assignments) and time.monotonic() < grace:
            msg = assigns.get(timeout=0.2)
            if msg is not None and msg.payload:
                assignments.append(json.loads(msg.payload))
    finally:
        client.close(timeout=0.5)
    return {"records": [_slim(r) for r in records], "assignments": assignments}


def _slim(record: Dict[str, Any]) -> Dict[str, Any]:
    return {"seq": record["seq"], "cut": record["cut"], "payload_bytes": record["payload_bytes"],
            "timings": record["timings"], "boxes": len(record.get("boxes", []))}


def _paced_frames(source: str, frames: int, fps: float) -> Any:
    from splitinfer.head.sources import open_source

    period = 1.0 / fps if fps > 0 else 0.0
    due = time.monotonic()
    for frame in open_source(source, limit=frames, loop=True):
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        due = max(due + period, time.monotonic())
        yield frame, time.time()


def jpeg_head(args: argparse.Namespace) -> Dict[str, Any]:
    """Letterbox each frame to ``--imgsz``, JPEG q``--quality`` it, publish it with its capture time."""
    import cv2

    from splitinfer.splitting.preprocess import letterbox

    client = _client(args.broker, "jpeg-head")
    client.connect(timeout=10)
    sizes = []
    try:
        for frame, captured in _paced_frames(args.source, args.frames, args.fps):
            image, ratio, pad = letterbox(frame.image, (args.imgsz, args.imgsz))
            ok, jpeg = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), args.quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            h, w = frame.image.shape[:2]
            header = _JPEG_HEADER.pack(captured, frame.index, h, w, ratio, pad[0], pad[1])
            payload = header + jpeg.tobytes()
            sizes.append(len(payload))
            client.publish(args.topic, payload, qos=0)
        time.sleep(0.5)
    finally:
        client.close(timeout=1.0)
    return {"sent": len(sizes), "bytes_mean": sum(sizes) / max(1, len(sizes))}


def jpeg_tail(args: argparse.Namespace) -> Dict[str, Any]:
    """Decode the JPEGs, run the whole model and NMS; the e2e time runs from capture to detections ready."""
    import cv2
    import numpy as np
    import torch

    import splitinfer
    from splitinfer.features import FrameMeta

    _threads(args.threads)
    model = splitinfer.load_model(args.model)
    with torch.no_grad():
        model(torch.zeros(1, 3, args.imgsz, args.imgsz))  # warm up before the first frame arrives
    client = _client(args.broker, "jpeg-tail")
    sub = client.subscribe(args.topic, maxsize=1000, drop="oldest")
    client.connect(timeout=10)
    print(json.dumps({"ready": True}), flush=True)
    records: List[Dict[str, Any]] = []
    deadline = time.monotonic() + args.timeout
    try:
        while len(records) < args.frames and time.monotonic() < deadline:
            msg = sub.get(timeout=0.2)
            if msg is None:
                continue
            captured, seq, h, w, ratio, px, py = _JPEG_HEADER.unpack_from(msg.payload)
            t0 = time.perf_counter()
            image = cv2.imdecode(np.frombuffer(msg.payload[_JPEG_HEADER.size:], np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                continue
            x = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))).float().div_(255.0)[None]
            t1 = time.perf_counter()
            with torch.no_grad():
                out = model(x)
            t2 = time.perf_counter()
            meta = FrameMeta(seq=seq, timestamp=captured, orig_shape=(h, w), ratio=ratio, pad=(px, py))
            det = splitinfer.postprocess(out, [meta], conf=0.25, end2end=model.end2end, names=model.names)[0]
            done = time.time()
            records.append({"seq": seq, "cut": None, "payload_bytes": len(msg.payload), "boxes": len(det.boxes),
                            "timings": {"decode_ms": (t1 - t0) * 1000, "tail_ms": (t2 - t1) * 1000,
                                        "transit_ms": max(0.0, (msg.received_wall - captured) * 1000),
                                        "e2e_ms": (done - captured) * 1000}})
    finally:
        client.close(timeout=0.5)
    return {"records": records}


def whole(args: argparse.Namespace) -> Dict[str, Any]:
    """The whole model on the head, no network: letterbox, model, NMS per paced frame."""
    import torch

    import splitinfer

    _threads(args.threads)
    model = splitinfer.load_model(args.model)
    with torch.no_grad():
        model(torch.zeros(1, 3, args.imgsz, args.imgsz))
    records: List[Dict[str, Any]] = []
    for frame, captured in _paced_frames(args.source, args.frames, args.fps):
        x, metas = splitinfer.to_batch([frame.image], args.imgsz, timestamps=[captured])
        t1 = time.perf_counter()
        with torch.no_grad():
            out = model(x)
        t2 = time.perf_counter()
        det = splitinfer.postprocess(out, metas, conf=0.25, end2end=model.end2end, names=model.names)[0]
        records.append({"seq": frame.index, "cut": None, "payload_bytes": 0, "boxes": len(det.boxes),
                        "timings": {"head_ms": (t2 - t1) * 1000, "e2e_ms": (time.time() - captured) * 1000}})
    return {"records": records}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitinfer.bench.e2e_procs")
    sub = parser.add_subparsers(dest="program", required=True)
    for name in ("collect", "jpeg-head", "jpeg-tail", "whole"):
        p = sub.add_parser(name)
        p.add_argument("--broker", default="mqtt://127.0.0.1:1883")
        p.add_argument("--fleet", default="bench")
        p.add_argument("--head", default="head-1")
        p.add_argument("--topic", default="splitinfer-bench/jpeg")
        p.add_argument("--model", default="")
        p.add_argument("--source", default="synthetic")
        p.add_argument("--imgsz", type=int, default=320)
        p.add_argument("--frames", type=int, default=20)
        p.add_argument("--fps", type=float, default=2.0)
        p.add_argument("--quality", type=int, default=90)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--timeout", type=float, default=120.0)
        p.add_argument("--done-file", default="")
    args = parser.parse_args(argv)
    program = {"collect": collect, "jpeg-head": jpeg_head, "jpeg-tail": jpeg_tail, "whole": whole}[args.program]
    print(json.dumps(program(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
