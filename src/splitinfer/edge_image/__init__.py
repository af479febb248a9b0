"""The head node program: what the edge container (Dockerfile.jetson) runs. Python 3.8 + torch 1.11."""

from __future__ import annotations

from .head import HeadNode

__all__ = ["HeadNode"]
