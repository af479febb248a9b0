"""The codec part: the wire format of one batch of feature maps (docs/wire-format.md).

format.py    header structs, bounded reader, magic/version/checksum envelope
quantize.py  uniform affine quantization per channel or per tensor (on the tensor's device)
pack.py      vectorized bit packing (bit planes or one symbol per byte)
delta.py     temporal delta coding: keyframe state per source, zigzag map
settings.py  CodecSettings (what the encoder does; the decoder reads the blob)
codec.py     Codec: encode / decode (version 1 here; version 2 in weighted.py)
table.py     CalibrationTable: per-channel sensitivity and mean of a model's crossing tensors (file format, digest)
weighted.py  wire format 2: sensitivity-weighted quantization with a table, range-coded
arith.py     the range coder and centred quantizer of version 2 (C module _arith.c, or a pure-Python twin)
"""

from __future__ import annotations

from .codec import Codec
from .settings import CodecSettings
from .table import CalibrationTable

__all__ = ["CalibrationTable", "Codec", "CodecSettings"]
