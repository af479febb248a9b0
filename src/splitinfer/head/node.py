"""The head node: capture → letterbox → head layers → encode → publish, following its assignment.

What the edge container runs (``splitctl node head``). Knows nothing of Docker or the CLI. Python 3.8.

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
from splitinfer.errors import SourceError, SplitInferError, TransportError
from splitinfer.node.background import OneAtATime
from splitinfer.node.link import NodeLink, device_info
from splitinfer.node.models import load_assigned_model
from splitinfer.node.stats import Calibration, LatencyStats, Rate

from .capture import Grabber
from .delivery import Delivery
from .pipeline import HeadPipeline
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
    ) -> None:
        """``profile``: measure (or load the cached) per-layer profile of each assigned model and cut sizes with the
        assigned codec, and time the link to the broker every ``probe_every`` seconds (0: only at start); both
        are reported in the retained info, the link again when its bandwidth moves by ``reprobe_fraction``."""
        self.topics = topics
        self.device_id = device_id
        self.source = source
        self.fps, self.frames, self.loop = fps, frames, loop
        self.model_dir, self.device, self.half = model_dir, device, half
        self.stats = LatencyStats()
        self.counts: Dict[str, int] = dict.fromkeys(("sent", "unsent", "no_route", "failed", "bytes"), 0)
        self.assignment: Optional[Assignment] = None
        self.pipeline: Optional[HeadPipeline] = None
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
            "cut": self.pipeline.head.cut if self.pipeline else None,
            "route": self.assignment.route if self.assignment else "",
            "link": self.profile.get("link"),
            "predicted_ms": self.assignment.predicted_ms if self.assignment else None,
            **self.delivery.counts(), "tail_silent": self._silent, "mode": "split",
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
        log.info("%s: assignment %d: cut %s (layer %d), route → %s, codec %s%s", self.device_id, new.generation,
                 new.cut, self.pipeline.head.cut, new.route or "(no live tail)", new.codec,
                 f" ({new.reason}; predicted {new.predicted_ms} ms)" if new.reason else "")
        self.assignment = new

    def _build(self, new: Assignment) -> Optional[HeadPipeline]:
        """The pipeline for ``new``. A model that cannot be loaded here fails the node (said, then raised); settings
        that do not fit it (cut, codec, input size) refuse the assignment and keep the running pipeline."""
        try:
            model = load_assigned_model(new, model_dir=self.model_dir, device=self.device, half=self.half)
        except SplitInferError as exc:
            self.link.fail(f"cannot load the assigned model {new.model}: {exc}")
            raise
        try:
            return HeadPipeline.build(new, model=model)
        except SplitInferError as exc:
            self.link.bad_assignments += 1
            self.assignment_error = f"assignment {new.generation} refused: {exc}"
            log.error("%s: %s%s", self.device_id, self.assignment_error,
                      "; keeping the running pipeline" if self.pipeline else "; waiting for a usable one")
            return None

    def _measure_profile(self, assignment: Assignment) -> None:
        """This model's per-layer profile and per-cut sizes with the assigned codec (cached), in the info."""
        from splitinfer.codec import Codec
        from splitinfer.splitting.profile import head_profile

        assert self.pipeline is not None
        wanted = (assignment.model, assignment.imgsz, assignment.batch, assignment.codec)
        have = (self.profile.get("model"), self.profile.get("imgsz"), self.profile.get("batch"),
                self.profile.get("codec"))
        if wanted == have:
            return
        t = time.perf_counter()
        measured = head_profile(self.pipeline.head.model, name=assignment.model, imgsz=self.pipeline.imgsz,
                                batch=assignment.batch, codec=assignment.codec,
                                make_codec=lambda: Codec(**assignment.codec))
        self.profile = dict(measured, imgsz=assignment.imgsz, link=self.profile.get("link"))
        log.info("%s: profile of %s at %d ready in %.1f s", self.device_id, assignment.model, assignment.imgsz,
                 time.perf_counter() - t)
        self.link.update_profile(self.profile)

    def _calibrate(self, head_ms: float) -> None:
        """Report ``head_scale`` (observed / profiled head layers) when it moves: see Calibration."""
        assert self.pipeline is not None
        layer_ms = self.profile.get("layer_ms")
        if not isinstance(layer_ms, list):
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
        try:
            blob, timings = self.pipeline.process(taken, self.device_id)
        except SplitInferError as exc:
            self.counts["failed"] += len(taken)
            log.error("%s: frame failed: %s", self.device_id, exc)
            return True
        self.stats.add_all(timings)
        if self.profiling:
            self._calibrate(timings["head_ms"] / len(taken))
        route = self.assignment.route
        if not route:
            self.counts["no_route"] += len(taken)
            return True
        payload = pack_features(blob, time.time(), dict(timings, clock_offset_ms=self.delivery.clock_offset_ms))
        try:
            ok = self.link.mqtt.publish(self.topics.features(route, self.device_id), payload, qos=0)
        except TransportError as exc:
            self.counts["failed"] += len(taken)
            log.error("%s: %s", self.device_id, exc)
            return True
        if ok:
            self.counts["sent"] += len(taken)
            self.counts["bytes"] += len(payload)
            self._rate.tick(len(taken))
            self.delivery.note_sent(frame.index for frame, _, _ in taken)
        else:
            self.counts["unsent"] += len(taken)
        return True
