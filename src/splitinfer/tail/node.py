"""The tail node: features from its heads → decode → batch → tail layers → NMS → detections.

What the tail container runs (``splitctl node tail``). Bad payloads are counted and skipped, never a crash.
Knows nothing of Docker or the CLI. Python 3.8.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from splitinfer.broker.client import Message
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.messages import Assignment
from splitinfer.broker.topics import Topics
from splitinfer.errors import ModelError, SplitInferError
from splitinfer.node.background import OneAtATime
from splitinfer.node.link import NodeLink, device_info
from splitinfer.node.models import load_assigned
from splitinfer.node.stats import Calibration, LatencyStats, Rate

from .batcher import Decoded, TailPipeline

__all__ = ["TailNode"]

log = logging.getLogger("splitinfer.tail")


class TailNode:
    def __init__(
        self,
        config: BrokerConfig,
        topics: Topics,
        device_id: str,
        *,
        model_dir: str = "",
        device: str = "cpu",
        half: bool = False,
        queue: int = 64,
        conf: float = 0.25,
        iou: float = 0.7,
        profile: bool = True,
    ) -> None:
        """``profile``: measure (or load the cached) per-layer profile of each assigned model, at one frame and at
        the assigned batch, and report it in the retained info (for ``--cut auto``)."""
        self.topics = topics
        self.device_id = device_id
        self.model_dir, self.device, self.half = model_dir, device, half
        self.queue, self.conf, self.iou = queue, conf, iou
        self.stats = LatencyStats()
        self.e2e_by_head = LatencyStats(window=256)  # measured end to end per head, beside auto's prediction
        self.counts: Dict[str, int] = dict.fromkeys(
            ("frames", "batches", "decode_errors", "rejected", "errors", "clock_skewed"), 0)
        self._skew_warned: Set[str] = set()
        self._rate = Rate()
        self.assignment: Optional[Assignment] = None
        self.pipeline: Optional[TailPipeline] = None
        self._sub: Any = None
        self._started = time.monotonic()
        self.profiling = profile
        self.calibration = Calibration()
        self._profiler = OneAtATime("profiling", log)
        self.link = NodeLink(config, topics, device_info(device_id, "tail", device=device), metrics=self.metrics)

    def metrics(self) -> Dict[str, Any]:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return {
            "role": "tail", "ready": self.pipeline is not None, "fps": self._rate.value(),
            "fps_mean": round(self.counts["frames"] / elapsed, 3), "latency_ms": self.stats.summary(),
            "e2e_ms_by_head": self.e2e_by_head.summary(),
            "frames": self.counts["frames"], "batches": self.counts["batches"],
            "decode_errors": self.counts["decode_errors"], "rejected": self.counts["rejected"],
            "errors": self.counts["errors"], "clock_skewed": self.counts["clock_skewed"],
            "dropped": self._sub.dropped if self._sub is not None else 0,
            "generation": self.assignment.generation if self.assignment else 0,
            "heads": list(self.assignment.heads) if self.assignment else [],
        }

    def run(self, stop: threading.Event) -> Dict[str, Any]:
        self._sub = self.link.mqtt.subscribe(self.topics.features_for(self.device_id), qos=0,
                                             maxsize=self.queue, drop="oldest")
        self.link.start()
        try:
            while not stop.is_set():
                self._follow_assignment()
                if self.pipeline is None:
                    time.sleep(0.1)
                    continue
                messages = self._collect()
                if messages:
                    self._handle(messages)
            return self.metrics()
        finally:
            self.link.close()

    def _follow_assignment(self) -> None:
        new = self.link.next_assignment(0.0 if self.pipeline else 0.2)
        if new is None or (self.pipeline is not None and not new.newer_than(self.assignment)):
            return
        if self.pipeline is None or not new.same_pipeline(self.assignment):
            model, tables = load_assigned(new, model_dir=self.model_dir, device=self.device, half=self.half,
                                          on_failure=self.link.fail)
            try:
                self.pipeline = TailPipeline.build(new, model=model, tables=tables)
            except SplitInferError as exc:  # settings that do not fit the model: refuse them, keep serving
                self.link.bad_assignments += 1
                log.error("%s: assignment %d refused: %s", self.device_id, new.generation, exc)
                return
            self.assignment = new
            self.link.publish_metrics()  # ready: the coordinator routes heads here from now on
            if self.profiling:
                self._profiler.start(lambda: self._measure_profile(new))
        self.assignment = new
        log.info("%s: assignment %d: heads %s, batch %d, max wait %.1f ms", self.device_id, new.generation,
                 new.heads, new.batch, new.max_wait_ms)

    def _measure_profile(self, assignment: Assignment) -> None:
        from splitinfer.splitting.model import default_imgsz
        from splitinfer.splitting.profile import tail_profile

        assert self.pipeline is not None
        profile = self.link.info.profile
        if (profile.get("model"), profile.get("imgsz"), profile.get("batch")) == (
                assignment.model, assignment.imgsz, assignment.batch):
            return
        t = time.perf_counter()
        measured = tail_profile(self.pipeline.model, name=assignment.model,
                                imgsz=default_imgsz(self.pipeline.model, assignment.imgsz),
                                batch=assignment.batch)
        log.info("%s: profile of %s at %d (batch %d) ready in %.1f s", self.device_id, assignment.model,
                 assignment.imgsz, assignment.batch, time.perf_counter() - t)
        self.link.update_profile(dict(measured, imgsz=assignment.imgsz))

    def _calibrate(self, record: Dict[str, Any]) -> None:
        """Report ``tail_scale`` (observed / profiled tail layers) when it moves: see Calibration."""
        profile = self.link.info.profile
        layer_ms = profile.get("layer_ms")
        if not isinstance(layer_ms, list) or not isinstance(record.get("cut"), int):
            return
        scale = self.calibration.add(record["timings"]["tail_ms"], sum(layer_ms[record["cut"]:]))
        if scale is not None:
            log.info("%s: tail layers run at %.2f × their profiled time", self.device_id, scale)
            self.link.update_profile(dict(profile, tail_scale=scale))

    def _collect(self) -> List[Message]:
        """The first message within 0.2 s, then more until the batch is full or max_wait_ms has passed."""
        assert self.assignment is not None
        first = self._sub.get(timeout=0.2)
        if first is None:
            return []
        messages = [first]
        deadline = time.monotonic() + self.assignment.max_wait_ms / 1000.0
        while len(messages) < self.assignment.batch:
            remaining = deadline - time.monotonic()
            more = self._sub.get(timeout=remaining) if remaining > 0 else None
            if more is None:
                break
            messages.append(more)
        return messages

    def _handle(self, messages: List[Message]) -> None:
        """Decode, check and run one batch. Whatever a message holds, the tail goes on: a malformed or foreign
        payload is counted (``decode_errors``, ``rejected``), and so is any other failure (``errors``, logged
        with its traceback: that one is a bug)."""
        assert self.pipeline is not None
        decoded: List[Decoded] = []
        for msg in messages:
            try:
                decoded.append(self.pipeline.decode(msg, self.topics))
            except ModelError as exc:
                self.counts["rejected"] += 1
                log.warning("%s: rejected features on %s: %s", self.device_id, msg.topic, exc)
            except SplitInferError as exc:
                self.counts["decode_errors"] += 1
                log.warning("%s: skipping bad features on %s: %s", self.device_id, msg.topic, exc)
            except Exception:
                self.counts["errors"] += 1
                log.exception("%s: features on %s failed", self.device_id, msg.topic)
        for d in decoded:
            if d.skewed:
                self.counts["clock_skewed"] += 1
                if d.head not in self._skew_warned:
                    self._skew_warned.add(d.head)
                    log.warning("%s: %s's clock is ahead of ours: its latencies read 0 until it measures the "
                                "offset (NTP fixes this)", self.device_id, d.head)
        for group in self.pipeline.group(decoded):
            try:
                results = self.pipeline.run(group, conf=self.conf, iou=self.iou)
            except SplitInferError as exc:
                self.counts["rejected"] += sum(d.batch for d in group)
                log.warning("%s: rejected features: %s", self.device_id, exc)
                continue
            except Exception:
                self.counts["errors"] += sum(d.batch for d in group)
                log.exception("%s: a batch from %s failed", self.device_id, sorted({d.head for d in group}))
                continue
            self._publish(results)

    def _publish(self, results: List[Tuple[str, Dict[str, Any]]]) -> None:
        self.counts["batches"] += 1
        if self.profiling and len(results) == 1:  # the profile's layer_ms are for one frame
            self._calibrate(results[0][1])
        self._rate.tick(len(results))
        for head, record in results:
            self.counts["frames"] += 1
            self.stats.add_all({k: v for k, v in record["timings"].items()})
            self.e2e_by_head.add(head, record["timings"]["e2e_ms"])
            record["tail"] = self.device_id
            record["clock"]["published"] = time.time()  # with sent and received: the head's clock-offset estimate
            self.link.mqtt.publish(self.topics.detections(head), json.dumps(record).encode(), qos=0)
