"""The head part: what the edge container (Dockerfile.jetson) runs. Python 3.8 + torch 1.11.

    sources.py   frame sources: image folders and files, video, camera indices, RTSP/HTTP, GStreamer, synthetic
    capture.py   Grabber: capture on its own thread, pacing and dropping stale frames
    pipeline.py  HeadPipeline: letterbox → head layers → encode, for one assignment
    node.py      HeadNode: follows its assignment and publishes features to its tail
"""

from __future__ import annotations

from .node import HeadNode

__all__ = ["HeadNode"]
