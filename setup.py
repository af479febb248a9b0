"""Only the optional AVX2 kernels of the codec live here; everything else is in pyproject.toml.

On x86-64 with a C compiler, ``pip install`` builds ``splitinfer.codec._simd``; anywhere else, or if the build
fails, the install goes on without it and the codec runs its numpy/torch path (the same bytes, slower).
"""

import platform

from setuptools import Extension, setup

extensions = []
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
