"""The coordinator: registers devices, assigns each head a cut and a tail, and re-routes when a tail goes."""

from __future__ import annotations

from splitinfer.broker.messages import Override, Policy

from .planner import DeviceState, plan

__all__ = ["DeviceState", "Override", "Policy", "plan"]
