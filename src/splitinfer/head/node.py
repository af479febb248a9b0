"""The head node: capture → letterbox → head layers → encode → publish, following its assignment.

What the edge container runs (``splitctl node head``). Knows nothing of Docker or the CLI. Python 3.8.

It runs its assignment's mode (split, local or offload: :mod:`.pipeline`) and falls back to local by itself
when its tail is gone or silent, or its link cannot carry its frames (:mod:`.fallback`). Offload sends the
camera's frames away, so a head refuses it unless its operator allowed it here (``allow_offload``).

It reads its own detections back as acknowledgements (:mod:`.delivery`): frames its tail never answers are
counted lost, a tail that stops answering is noticed within seconds, and the two clocks are compared. A source
that cannot open, or an assigned model that cannot load, is a failure said out loud: state ``failed`` with the
reason (retained), then a non-zero exit. Profiles are measured in the background while the node serves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Dict, Optional

from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment, pack_features
from splitinfer.broker.topics import Topics
from splitinfer.errors import FleetConfigError, SourceError, SplitInferError, TransportError
from splitinfer.node.background import OneAtATime
from splitinfer.node.link import NodeLink, device_info
from splitinfer.node.models import load_assigned, load_assigned_model, load_assigned_tables
from splitinfer.node.stats import Calibration, LatencyStats, Rate
from splitinfer.splitting.model import default_imgsz

from .capture import Grabber
from .delivery import Delivery
from .fallback import Fallback
from .pipeline import HeadPipeline, LocalPipeline, build_pipeline, codec_for
from .sources import check_source

__all__ = ["HeadNode"]

log = logging.getLogger("splitinfer.head")


class HeadNode:
    def __init__(
        self,
        config: BrokerConfig,
        topics: Topics,
        device_id: str,
        source: str,
        *,
        fps: float = 0.0,
        frames: Optional[int] = None,
        loop: bool = False,
        model_dir: str = "",
        device: str = "cpu",
        half: bool = False,
        profile: bool = True,
        probe_every: float = 30.0,
        reprobe_fraction: float = 0.25,
        allow_offload: bool = False,
    ) -> None:
        """``profile``: measure (or load the cached) per-layer profile of each assigned model and cut sizes with the
        assigned codec, and time the link to the broker every ``probe_every`` seconds (0: only at start); both
        are reported in the retained info, the link again when its bandwidth moves by ``reprobe_fraction``.
        ``allow_offload``: this head may send its frames to a tail (the operator's choice, on the device)."""
        self.topics = topics
        self.device_id = device_id
        self.source = source
        self.fps, self.frames, self.loop = fps, frames, loop
        self.model_dir, self.device, self.half = model_dir, device, half
        self.stats = LatencyStats()
        self.counts: Dict[str, int] = dict.fromkeys(("sent", "unsent", "no_route", "failed", "bytes", "local"), 0)
        self.assignment: Optional[Assignment] = None
        self.pipeline: Any = None  # the planned mode's pipeline
        self.local: Optional[LocalPipeline] = None  # the whole model, when local runs here (planned or fallback)
        self.allow_offload = allow_offload
        self.fallback = Fallback()
        self.mode = ""
        self.grabber: Optional[Grabber] = None
        self._rate = Rate()
        self.profiling, self.probe_every, self.reprobe_fraction = profile, probe_every, reprobe_fraction
        self.profile: Dict[str, Any] = {}
        self._next_probe = 0.0
        self.calibration = Calibration()
        self.delivery = Delivery()
        self._silent = False
        self.assignment_error = ""
        self._acks: Any = None
        self._profiler = OneAtATime("profiling", log)
        self.link = NodeLink(config, topics, device_info(device_id, "head", device=device), metrics=self.metrics)

    def metrics(self) -> Dict[str, Any]:
        g = self.grabber
        sent = self.counts["sent"]
        return {
            "role": "head", "fps": self._rate.value(), "latency_ms": self.stats.summary(),
            "bytes_per_frame": round(self.counts["bytes"] / sent) if sent else 0,
            "frames_captured": g.captured if g else 0, "frames_sent": sent,
            "dropped": (g.dropped if g else 0) + self.counts["unsent"] + self.counts["no_route"],
            "dropped_capture": g.dropped if g else 0, "unsent": self.counts["unsent"],
            "no_route": self.counts["no_route"], "failed": self.counts["failed"],
            "source_done": bool(g and g.exhausted),
            "generation": self.assignment.generation if self.assignment else 0,
            "cut": self.pipeline.head.cut if isinstance(self.pipeline, HeadPipeline) else None,
            "route": self.assignment.route if self.assignment else "",
            "link": self.profile.get("link"),
            "predicted_ms": self.assignment.predicted_ms if self.assignment else None,
            **self.delivery.counts(), "tail_silent": self._silent, "mode": self.mode or None,
            "planned_mode": self.assignment.mode if self.assignment else None, "fallback": self.fallback.reason,
            "frames_local": self.counts["local"],
            "ready": self.pipeline is not None, "assignment_error": self.assignment_error,
            "bad_assignments": self.link.bad_assignments,
        }

    def run(self, stop: threading.Event) -> Dict[str, Any]:
        """Run until the source ends (and the last frame is sent) or ``stop`` is set."""
        self._acks = self.link.mqtt.subscribe(self.topics.detections(self.device_id), qos=0, maxsize=4096,
                                              drop="oldest")
        self.link.start()
        try:
            try:
                check_source(self.source)
            except SourceError as exc:
                self.link.fail(str(exc))
                raise
            if self.profiling:
                self._probe_link(force=True)
            self._wait_for_assignment(stop)
            if stop.is_set():
                return self.metrics()
            batch = self.assignment.batch if self.assignment else 1
            self.grabber = Grabber(self.source, fps=self.fps, capacity=2 * batch, limit=self.frames,
                                   loop=self.loop).start()
            while not stop.is_set():
                self._follow_assignment(timeout=0.0)
                if self.profiling and self.probe_every > 0 and time.monotonic() >= self._next_probe:
                    self._probe_link()
                self._read_acks()
                if not self._step():
                    break
            self._drain_acks(stop)
            error = self.grabber.error
            if error is not None:
                raise error  # a SourceError says which source and why; anything else is a bug, with its traceback
            return self.metrics()
        finally:
            if self.grabber is not None:
                self.grabber.stop()
            self.link.close()

    def _wait_for_assignment(self, stop: threading.Event) -> None:
        log.info("%s: waiting for an assignment on %s", self.device_id, self.topics.assign(self.device_id))
        while not stop.is_set() and self.pipeline is None:
            self._follow_assignment(timeout=0.5)

    def _follow_assignment(self, timeout: float) -> None:
        new = self.link.next_assignment(timeout)
        if new is None or (self.pipeline is not None and not new.newer_than(self.assignment)):
            return
        if self.pipeline is None or not new.same_pipeline(self.assignment):
            pipeline = self._build(new)
            if pipeline is None:
                return
            self.pipeline = pipeline
            self.calibration.reset()
            if self.profiling:
                self._profiler.start(lambda: self._measure_profile(new))
        if self.assignment is None or new.route != self.assignment.route:
            self.delivery.new_route()
            self.fallback.new_route()
            self._forget_keyframes()  # the new tail has none of ours
        what = (f"cut {new.cut} (layer {self.pipeline.head.cut})" if isinstance(self.pipeline, HeadPipeline)
                else f"{new.mode}" + (f" ({new.image['format']})" if new.mode == "offload" else ""))
        log.info("%s: assignment %d: %s, route → %s, codec %s%s", self.device_id, new.generation, what,
                 new.route or "(no live tail)", new.codec,
                 f" ({new.reason}; predicted {new.predicted_ms} ms)" if new.reason else "")
        self.assignment = new

    def _build(self, new: Assignment) -> Any:
        """The pipeline for ``new``. A model that cannot be loaded here fails the node (said, then raised); settings
        that do not fit it (cut, codec, input size, an offload this head may not do) refuse the assignment and keep
        the running pipeline."""
        model, tables = load_assigned(new, model_dir=self.model_dir, device=self.device, half=self.half,
                                      on_failure=self.link.fail)
        try:
            if new.mode == "offload" and not self.allow_offload:
                raise FleetConfigError("offload is not allowed on this head (allow_offload in fleet.yaml, "
                                       "SPLITINFER_ALLOW_OFFLOAD here): its frames stay on the camera")
            pipeline = build_pipeline(new.mode, new, model, tables)
            self.local = LocalPipeline.build(new, model) if new.fallback or new.mode == "local" else None
            return pipeline
        except SplitInferError as exc:
            self.link.bad_assignments += 1
            self.assignment_error = f"assignment {new.generation} refused: {exc}"
            log.error("%s: %s%s", self.device_id, self.assignment_error,
                      "; keeping the running pipeline" if self.pipeline else "; waiting for a usable one")
            return None

    def _measure_profile(self, assignment: Assignment) -> None:
        """This model's per-layer profile and per-cut sizes with the assigned codec (cached), in the info."""
        from splitinfer.codec import simd
        from splitinfer.splitting.profile import head_profile

        assert self.pipeline is not None
        image_codec = self._image_codec(assignment)
        digests = [t.sha256 for t in assignment.tables]
        wanted = (assignment.model, assignment.imgsz, assignment.batch, assignment.codec, digests,
                  [image_codec[0]] if image_codec else [])
        have = (self.profile.get("model"), self.profile.get("imgsz"), self.profile.get("batch"),
                self.profile.get("codec"), self.profile.get("tables") or [], sorted(self.profile.get("images") or {}))
        if wanted == have:
            return
        t = time.perf_counter()
        model = load_assigned_model(assignment, model_dir=self.model_dir, device=self.device, half=self.half)
        tables = load_assigned_tables(assignment, model_dir=self.model_dir)
        imgsz = default_imgsz(model, assignment.imgsz)
        measured = head_profile(model, name=assignment.model, imgsz=imgsz, image_codec=image_codec,
                                batch=assignment.batch, codec=assignment.codec, tables=[t.hexdigest for t in tables],
                                make_codec=lambda cut: codec_for(cut, model, imgsz, assignment.codec, tables),
                                codec_path=simd.status())
        self.profile = dict(measured, imgsz=assignment.imgsz, link=self.profile.get("link"), tables=digests)
        log.info("%s: profile of %s at %d ready in %.1f s", self.device_id, assignment.model, assignment.imgsz,
                 time.perf_counter() - t)
        self.link.update_profile(self.profile)

    def _image_codec(self, assignment: Assignment) -> Any:
        """What the profile measures offload with: only where this head may offload, and its codec is here."""
        from splitinfer.codec.frames import available, decode_frames, encode_frames
        from splitinfer.features import FrameMeta

        image = assignment.image or {"format": "webp", "quality": 80}
        if not self.allow_offload or not available(image["format"]):
            return None
        fmt, quality = image["format"], image["quality"]
        return (fmt, lambda frame: encode_frames([frame], [FrameMeta()], fmt=fmt, quality=quality), decode_frames)

    def _calibrate(self, head_ms: float) -> None:
        """Report ``head_scale`` (observed / profiled head layers) when it moves: see Calibration."""
        layer_ms = self.profile.get("layer_ms")
        if not isinstance(layer_ms, list) or not isinstance(self.pipeline, HeadPipeline):
            return
        scale = self.calibration.add(head_ms, sum(layer_ms[: self.pipeline.head.cut]))
        if scale is not None:
            log.info("%s: head layers run at %.2f × their profiled time", self.device_id, scale)
            self.profile = dict(self.profile, head_scale=scale)
            self.link.update_profile(self.profile)

    def _probe_link(self, force: bool = False) -> None:
        """Time the link to the broker; report it when it is new or moved by more than ``reprobe_fraction``."""
        from splitinfer.node.link import link_changed, measure_link

        self._next_probe = time.monotonic() + self.probe_every
        try:
            measured = measure_link(self.link.mqtt, self.topics.probe(self.device_id))
        except TransportError as exc:
            log.warning("%s: link probe failed: %s", self.device_id, exc)
            return
        before = self.profile.get("link")
        if force or link_changed(before, measured, self.reprobe_fraction):
            log.info("%s: link to the broker: %.3g Mbit/s, RTT %.2f ms", self.device_id,
                     measured["bandwidth_bps"] / 1e6, measured["rtt_ms"])
            self.profile = dict(self.profile, link=measured)
            self.link.update_profile(self.profile)

    def _read_acks(self) -> None:
        """Count our tail's detection records as acknowledgements; notice when it stops answering."""
        for msg in self._acks.drain():
            try:
                record = json.loads(msg.payload)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict) and record.get("mode") == "local":
                continue  # our own detections, published while we ran locally
            self.delivery.note_record(record, msg.received_wall)
        self.delivery.expire()
        silent = self.delivery.silent()
        if silent != self._silent:
            self._silent = silent
            if silent:
                log.warning("%s: tail %s has not answered for %.0f s", self.device_id,
                            self.assignment.route if self.assignment else "?", self.delivery.silent_after)
            else:
                log.info("%s: the tail answers again", self.device_id)

    def _drain_acks(self, stop: threading.Event, timeout: float = 3.0) -> None:
        """At the end of a finite source: wait (briefly) for the last acknowledgements, so the counts are final."""
        deadline = time.monotonic() + timeout
        while self.delivery.counts()["in_flight"] and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.05)
            self._read_acks()

    def _step(self) -> bool:
        assert self.grabber is not None and self.pipeline is not None and self.assignment is not None
        taken = self.grabber.take(self.assignment.batch, timeout=0.2)
        if not taken:
            return not self.grabber.exhausted
        a = self.assignment
        mode, probe = self.fallback.decide(a.mode, allowed=self.local is not None, route=a.route,
                                           silent=self._silent)
        self._note_mode(mode)
        try:
            if mode == "local":
                self._detect_here(taken)
            else:
                self._send(taken, probe)
        except SplitInferError as exc:
            self.counts["failed"] += len(taken)
            log.error("%s: frame failed: %s", self.device_id, exc)
        return True

    def _forget_keyframes(self) -> None:
        """The next frame is a keyframe: after a blob that did not leave, a new route or a change of mode, the
        tail may lack the keyframe the encoder would make deltas against."""
        if isinstance(self.pipeline, HeadPipeline):
            self.pipeline.codec.reset()

    def _note_mode(self, mode: str) -> None:
        if mode != self.mode:
            self._forget_keyframes()
            if mode == "local" and self.fallback.reason:
                log.warning("%s: running the whole model here: %s", self.device_id, self.fallback.reason)
            elif self.mode:
                log.info("%s: %s mode%s", self.device_id, mode, " again" if self.fallback.reason == "" else "")
            self.mode = mode

    def _detect_here(self, taken: Any) -> None:
        """Local mode: the whole model on this head, which publishes the detections itself."""
        assert self.local is not None
        records, timings = self.local.process(taken, self.device_id)
        self.stats.add_all(timings)
        for record in records:
            self.link.mqtt.publish(self.topics.detections(self.device_id), json.dumps(record).encode(), qos=0)
        self.counts["local"] += len(taken)
        self._rate.tick(len(taken))

    def _send(self, taken: Any, probe: bool) -> None:
        """Split or offload: encode, then publish to the route (counted ``no_route`` when there is none)."""
        assert self.assignment is not None
        blob, timings = self.pipeline.process(taken, self.device_id)
        self.stats.add_all(timings)
        if self.profiling:
            self._calibrate(timings["head_ms"] / len(taken))
        route = self.assignment.route
        if not route:
            self.counts["no_route"] += len(taken)
            self._forget_keyframes()
            return
        payload = pack_features(blob, time.time(), dict(timings, clock_offset_ms=self.delivery.clock_offset_ms))
        try:
            ok = self.link.mqtt.publish(self.topics.features(route, self.device_id), payload, qos=0)
        except TransportError as exc:
            self.counts["failed"] += len(taken)
            self._forget_keyframes()
            log.error("%s: %s", self.device_id, exc)
            return
        self.fallback.published(ok)
        if not ok:
            self._forget_keyframes()
        if ok:
            self.counts["sent"] += len(taken)
            self.counts["bytes"] += len(payload)
            if not probe:
                self._rate.tick(len(taken))
            self.delivery.note_sent(frame.index for frame, _, _ in taken)
        else:
            self.counts["unsent"] += len(taken)
