"""How many CPU threads torch gets on a node. Part of the node runtime: Python 3.8.

Importing Ultralytics sets ``OMP_NUM_THREADS=1`` (unless already set) before torch starts its thread pool, so a
node that wants every core must say so itself: :func:`set_threads` sets the variable and torch's own count.
"""

from __future__ import annotations

import os

__all__ = ["cores", "set_threads"]


def cores() -> int:
    """The cores this process may run on (a container's cpuset, not the whole machine, where one is set)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(n: int) -> int:
    """Give torch ``n`` CPU threads (0: every core this process may use); returns the count.

    Call it before Ultralytics is imported: setting the variable first and then torch's own count covers both
    orders, and torch can be told again later (the threads benchmark switches between counts).
    """
    count = n if n > 0 else cores()
    os.environ["OMP_NUM_THREADS"] = str(count)
    import torch

    torch.set_num_threads(count)
    return count
