"""The coordinator: registers devices, assigns each head a cut and a tail, and re-routes when a tail goes."""

from __future__ import annotations

from .planner import DeviceState, Override, Policy, plan

__all__ = ["DeviceState", "Override", "Policy", "plan"]
