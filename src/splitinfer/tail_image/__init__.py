"""The tail node program: what the tail container (Dockerfile.tail) runs."""

from __future__ import annotations

from .tail import TailNode

__all__ = ["TailNode"]
