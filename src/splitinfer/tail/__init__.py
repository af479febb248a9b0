"""The tail part: what the tail container (Dockerfile.tail) runs.

    batcher.py  TailPipeline: decode, group frames from several heads into batches, tail layers, NMS
    node.py     TailNode: follows its assignment, serves the heads routed to it, publishes detections
"""

from __future__ import annotations

from .node import TailNode

__all__ = ["TailNode"]
