"""The small programs ``splitctl bench e2e`` runs beside the real nodes:

- ``collect``: reads a head's detections (from its tail, or from the head itself in local mode) and its
  assignments, until enough frames ran in the mode the coordinator planned with both profiles; prints JSON;
- ``profile``: measures (or loads) the profile a head or tail node would report, into the node's cache, so no
  measured configuration pays for profiling (run within the head's CPU budget for heads).

Every program prints one JSON object on stdout. Run as ``python -m splitinfer.bench.e2e_procs PROGRAM --options``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["main", "mode_of", "one_clock", "planned", "steady_run"]

QUIET_S = 3.0


def _client(url: str, name: str) -> Any:
    from splitinfer.broker.client import MqttClient
    from splitinfer.broker.config import BrokerConfig

    return MqttClient(BrokerConfig.from_url(url, client_id=name))


def mode_of(record: Dict[str, Any]) -> Tuple[str, Optional[int]]:
    """(mode, cut) of a detection record: ("split", 4), ("local", None), ("offload", None)."""
    return str(record.get("mode") or "split"), record.get("cut")


def steady_run(records: List[Dict[str, Any]], since: float,
               want: Optional[Tuple[str, Optional[int]]] = None) -> List[Dict[str, Any]]:
    """The records at the end of ``records`` that ran in one mode (``want``, if given), captured at or after
    ``since``."""
    run: List[Dict[str, Any]] = []
    for record in reversed(records):
        if float(record.get("timestamp") or 0.0) < since or (run and mode_of(record) != mode_of(run[-1])) or (
                want is not None and mode_of(record) != want):
            break
        run.append(record)
    return run[::-1]


def planned(assignments: List[Dict[str, Any]]) -> Tuple[Optional[Tuple[str, Optional[int]]], float]:
    """What the head was last planned to run, from the last assignment with a prediction — (mode, cut), e.g.
    ("split", 4) — and when that plan (mode and cut) was first received; (None, inf) before any."""
    want: Optional[Tuple[str, Optional[int]]] = None
    since = float("inf")
    for a in assignments:
        p = a.get("prediction")
        if a.get("predicted_ms") is None or not isinstance(p, dict):
            continue
        mode = str(p.get("mode") or "split")
        plan = (mode, int(p["cut"]) if mode == "split" and p.get("cut") is not None else None)
        if plan != want:
            want, since = plan, float(a.get("received") or 0.0)
    return want, since


def collect(args: argparse.Namespace) -> Dict[str, Any]:
    """Detections of ``--head`` until ``--warmup`` + ``--frames`` of them ran in the mode the head was last
    planned (the last assignment with a prediction: both profiles were in), captured after that plan arrived;
    or until the head process is done (``--done-file``) and quiet, or ``--timeout``."""
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
        while time.monotonic() < deadline:
            assignments += [dict(json.loads(m.payload), received=m.received_wall) for m in assigns.drain()
                            if m.payload]
            want, since = planned(assignments)
            if want is not None and len(steady_run(records, since, want)) >= args.warmup + args.frames:
                break
            msg = detections.get(timeout=0.2)
            if msg is not None:
                records.append(json.loads(msg.payload))
                quiet_since = None
            elif args.done_file and os.path.exists(args.done_file):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > QUIET_S:
                    break
    finally:
        client.close(timeout=0.5)
    want, since = planned(assignments)
    return {"records": [_slim(r) for r in records], "assignments": assignments, "planned": want,
            "since": since if want is not None else None}


def one_clock(record: Dict[str, Any]) -> Dict[str, Any]:
    """The record's timings with ``e2e_ms`` and ``transit_ms`` read off one clock (every process of the bench runs
    on one machine): capture → the tail's publish, and the head's publish → the tail's receive. The nodes' own
    figures, corrected by the head's NTP-style clock-offset estimate, are kept as ``reported_*``: on this path
    (a large payload one way, a small record back) that estimate takes in half the payload's transfer time."""
    timings = dict(record.get("timings") or {})
    clock = record.get("clock")
    captured = record.get("timestamp")
    if not isinstance(clock, dict) or not isinstance(captured, (int, float)) or not captured:
        return timings  # local mode: the head timed it on its own clock
    values = [v for v in (clock.get(k) for k in ("sent", "received", "published")) if isinstance(v, (int, float))]
    if len(values) != 3:
        return timings
    sent, received, published = (float(v) for v in values)
    timings["reported_e2e_ms"], timings["reported_transit_ms"] = timings.get("e2e_ms"), timings.get("transit_ms")
    timings["e2e_ms"] = round((published - float(captured)) * 1000.0, 3)
    timings["transit_ms"] = round((received - sent) * 1000.0, 3)
    return timings


def _slim(record: Dict[str, Any]) -> Dict[str, Any]:
    return {"seq": record.get("seq"), "timestamp": record.get("timestamp"), "cut": record.get("cut"),
            "mode": record.get("mode") or "split", "payload_bytes": record.get("payload_bytes", 0),
            "timings": one_clock(record), "boxes": len(record.get("boxes") or [])}


def profile(args: argparse.Namespace) -> Dict[str, Any]:
    """The profile a node reports for this model, input size and (heads) codec and image codec, measured the way
    the node measures it (same calls, same cache key: ``$SPLITINFER_CACHE``), so the node finds it cached."""
    import torch

    import splitinfer
    from splitinfer.splitting.model import default_imgsz
    from splitinfer.splitting.profile import head_profile, tail_profile

    torch.set_num_threads(max(1, args.threads))
    model = splitinfer.load_model(args.model)
    imgsz = default_imgsz(model, args.imgsz)
    name = os.path.basename(args.model)
    if args.role == "tail":
        return dict(tail_profile(model, name=name, imgsz=imgsz, batch=1), imgsz=args.imgsz)
    from splitinfer.codec import simd
    from splitinfer.codec.frames import available, decode_frames, encode_frames
    from splitinfer.codec.table import CalibrationTable
    from splitinfer.features import FrameMeta
    from splitinfer.head.pipeline import codec_for

    # the assignment's codec, as the coordinator writes it from its flags
    codec = {"bits": args.bits, "quality": args.quality, "keyframe_interval": args.keyframe_interval}
    tables = [CalibrationTable.load(path) for path in args.table]
    fmt, _, quality = args.image.partition(":")
    image_codec = None
    if available(fmt):
        q = int(quality or 80)
        image_codec = (fmt, lambda frame: encode_frames([frame], [FrameMeta()], fmt=fmt, quality=q), decode_frames)
    measured = head_profile(model, name=name, imgsz=imgsz, batch=1, codec=codec, tables=[t.hexdigest for t in tables],
                            make_codec=lambda cut: codec_for(cut, model, imgsz, codec, tables),
                            codec_path=simd.status(), image_codec=image_codec)
    return dict(measured, imgsz=args.imgsz)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitinfer.bench.e2e_procs")
    sub = parser.add_subparsers(dest="program", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    c.add_argument("--fleet", default="bench")
    c.add_argument("--head", default="head-1")
    c.add_argument("--frames", type=int, default=20, help="frames measured in one mode, after --warmup")
    c.add_argument("--warmup", type=int, default=3)
    c.add_argument("--timeout", type=float, default=120.0)
    c.add_argument("--done-file", default="")
    p = sub.add_parser("profile")
    p.add_argument("--role", choices=("head", "tail"), required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--quality", type=int, default=50)
    p.add_argument("--keyframe-interval", type=int, default=10)
    p.add_argument("--table", action="append", default=[], help="a calibration table file (repeatable)")
    p.add_argument("--image", default="jpeg:90", help="the image codec the head's profile measures, FORMAT:QUALITY")
    p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    program = {"collect": collect, "profile": profile}[args.program]
    print(json.dumps(program(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
