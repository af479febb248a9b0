"""CodecSettings: how the encoder quantizes (the decoder reads everything it needs from the blob)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from ..errors import CodecError

__all__ = ["DEFAULT_KEYFRAME_INTERVAL", "DEFAULT_QUALITY", "CodecSettings", "delta_for"]

FLOAT_BITS = (16, 32)
# the sensitivity-weighted scheme (a calibration table): quality q gives the frame step
# delta = DELTA_AT_50 * 2 ** ((50 - q) / QUALITY_PER_OCTAVE): 20 points halve the step (2.2-2.5x the bytes, cut d)
DEFAULT_QUALITY = 50
DEFAULT_KEYFRAME_INTERVAL = 10  # what fleets and the coordinator default to (CodecSettings' own default is 0)
DELTA_AT_50 = 0.0007
QUALITY_PER_OCTAVE = 20.0
GRANULARITIES = ("channel", "tensor")
LAYOUT_NAMES = ("planes", "bytes")


@dataclass(frozen=True)
class CodecSettings:
    """Encoder settings; the defaults for each ``bits`` are the best found at cut b (docs/wire-format.md).

    ``bits``: 2..8 for integer quantization, 16 or 32 for fp16/fp32 passthrough.
    ``granularity``: ``"channel"`` (a step and zero point per channel and frame) or ``"tensor"`` (one per
    tensor and frame).
    ``coarse_extra_bits``: extra bits for every tensor of lower spatial resolution than the finest tensor of
    the cut (capped at 8); default 1 for ``bits <= 4``, else 0. Deep, low-resolution maps are few values and
    carry most of what the detector needs, so a bit spent there buys more accuracy than one on the big early map.
    ``clip``: fraction of each group's values kept inside the quantizer range (1.0 = min/max; 0.999 clips
    the 0.05 % tails on each side, estimated on a subsample).
    ``layout``: ``"planes"`` (bit planes) or ``"bytes"`` (one symbol per byte) before zstd.
    ``level``: zstd level (1..22). ``keyframe_interval``: 0 for independent frames, N > 0 for temporal delta
    coding with a keyframe every N frames per source.
    ``max_values`` / ``max_bytes``: the decoder's limits on decoded values and on decompressed payload bytes.

    With a calibration table (``Codec(table=...)``, wire format 2) only ``quality``, ``keyframe_interval`` and the
    limits apply: ``quality`` 1..100 (higher is better; default 50, the best point measured) sets the frame step
    ``delta`` (:attr:`delta`); ``bits``, ``granularity``, ``coarse_extra_bits``, ``clip``, ``layout`` and ``level``
    are those of the version-1 scheme that runs without a table.
    """

    bits: int = 4
    granularity: str = "channel"
    coarse_extra_bits: Optional[int] = None
    clip: float = 1.0
    layout: str = "planes"
    level: int = 1
    keyframe_interval: int = 0
    quality: int = DEFAULT_QUALITY
    max_values: int = 64 * 1024 * 1024
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("bits", "level", "keyframe_interval", "max_values", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise CodecError(f"codec: {name} must be an integer, got {value!r}")
        if not isinstance(self.clip, (int, float)) or isinstance(self.clip, bool):
            raise CodecError(f"codec: clip must be a number, got {self.clip!r}")
        if not (2 <= self.bits <= 8 or self.bits in FLOAT_BITS):
            raise CodecError(f"codec: bits must be 2..8 (quantized) or 16/32 (float), got {self.bits}")
        if self.coarse_extra_bits is None:  # the measured best: +1 up to 4 bits; above, mAP50 is already 1.0
            object.__setattr__(self, "coarse_extra_bits", 1 if self.bits <= 4 else 0)
        if self.granularity not in GRANULARITIES:
            raise CodecError(f"codec: granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if not isinstance(self.coarse_extra_bits, int) or not 0 <= self.coarse_extra_bits <= 6:
            raise CodecError(f"codec: coarse_extra_bits must be 0..6, got {self.coarse_extra_bits}")
        if not 0.5 < self.clip <= 1.0:
            raise CodecError(f"codec: clip must be in (0.5, 1.0], got {self.clip}")
        if self.layout not in LAYOUT_NAMES:
            raise CodecError(f"codec: layout must be one of {LAYOUT_NAMES}, got {self.layout!r}")
        if not 1 <= self.level <= 22:
            raise CodecError(f"codec: zstd level must be 1..22, got {self.level}")
        if self.keyframe_interval < 0:
            raise CodecError(f"codec: keyframe_interval must be >= 0, got {self.keyframe_interval}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise CodecError(f"codec: quality must be an integer 1..100, got {self.quality!r}")
        if self.max_values < 1 or self.max_bytes < 1:
            raise CodecError("codec: max_values and max_bytes must be positive")

    @property
    def quantized(self) -> bool:
        return self.bits not in FLOAT_BITS

    @property
    def delta(self) -> float:
        """The frame step of the sensitivity-weighted scheme for this ``quality``."""
        return delta_for(self.quality)

    def bits_for(self, finest: bool) -> int:
        """Bit width of a tensor: ``bits`` for the finest-resolution tensors, more for coarser ones."""
        if not self.quantized or finest:
            return self.bits
        return min(8, self.bits + (self.coarse_extra_bits or 0))

    def describe(self) -> Dict[str, Any]:
        return asdict(self)


def delta_for(quality: float) -> float:
    """The frame step ``delta`` of the sensitivity-weighted scheme at ``quality`` (1..100, higher is finer)."""
    return DELTA_AT_50 * 2.0 ** ((50.0 - float(quality)) / QUALITY_PER_OCTAVE)
