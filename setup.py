"""The codec's C extensions; everything else is in pyproject.toml.

* ``splitinfer.codec._arith`` (portable C, every architecture): the range coder and centred quantizer of wire
  format version 2. Without a C compiler the install goes on without it and the codec runs its pure-Python twin
  (the same bytes, far slower).
* ``splitinfer.codec._simd`` (x86-64 only): the AVX2 kernels of the version-1 scheme. Anywhere else, or if the
  build fails, the codec runs its numpy/torch path (the same bytes, slower).
"""

import platform

from setuptools import Extension, setup

extensions = [
    Extension(
        "splitinfer.codec._arith",
        sources=["src/splitinfer/codec/_arith.c"],
        extra_compile_args=["-O3", "-ffp-contract=off"],
        optional=True,
    )
]
if platform.machine().lower() in ("x86_64", "amd64"):
    extensions.append(
        Extension(
            "splitinfer.codec._simd",
            sources=["src/splitinfer/codec/_simd.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
