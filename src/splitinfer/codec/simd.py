"""The codec's AVX2 kernels (the C module ``splitinfer.codec._simd``), when they can run here.

``kernels`` is that module when it was built (x86-64 with a C compiler at install time), the CPU has AVX2 and
``SPLITINFER_SIMD`` is not ``0``; otherwise None, and quantize.py and pack.py run their numpy/torch path. Both
paths produce the same symbols, planes and values bit for bit (tests/codec/test_simd.py), so encoders and
decoders with and without the kernels interoperate. Only CPU tensors use them; on a GPU the torch path runs.
"""

from __future__ import annotations

import os
from typing import Any, Optional

__all__ = ["kernels", "status"]

try:
    from . import _simd  # type: ignore[attr-defined]
except ImportError:  # not built: another architecture, or no compiler when it was installed
    _simd = None

_WANTED = os.environ.get("SPLITINFER_SIMD", "1").strip() != "0"
kernels: Optional[Any] = _simd if (_simd is not None and _simd.avx2 and _WANTED) else None


def status() -> str:
    """One line for logs and benchmarks: which path the codec's hot loops take here, and why."""
    if kernels is not None:
        return "AVX2 kernels"
    if _simd is None:
        return "numpy/torch (the AVX2 kernels are not built)"
    if not _simd.avx2:
        return "numpy/torch (this CPU has no AVX2)"
    return "numpy/torch (SPLITINFER_SIMD=0)"
