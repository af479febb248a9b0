"""A CliRunner whose ``result.stdout`` is stdout alone on every click the CLI runs with.

click 8.1 (the last release for Python 3.8, the Jetson image's) mixes stderr into ``result.stdout`` unless the
runner is made with ``mix_stderr=False``; click 8.2 removed that argument and always keeps the two apart. With
separate streams, ``result.output`` is stdout alone on 8.1 but both on 8.2: :func:`both` is both everywhere.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.testing import CliRunner

__all__ = ["both", "cli_runner"]


def cli_runner() -> CliRunner:
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def both(result: Any) -> str:
    """What the command printed on stdout and stderr."""
    return str(result.stdout) + str(result.stderr)
