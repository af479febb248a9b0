"""The codec part: the wire format of one batch of feature maps (docs/wire-format.md).

format.py    header structs, bounded reader, magic/version/checksum envelope
quantize.py  uniform affine quantization per channel or per tensor (on the tensor's device)
pack.py      vectorized bit packing (bit planes or one symbol per byte)
delta.py     temporal delta coding: keyframe state per source, zigzag map
settings.py  CodecSettings (what the encoder does; the decoder reads the blob)
codec.py     Codec: encode / decode
"""

from __future__ import annotations

from .codec import Codec
from .settings import CodecSettings

__all__ = ["Codec", "CodecSettings"]
