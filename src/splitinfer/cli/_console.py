"""The CLI's two consoles: tables and JSON go to stdout, everything else (progress, logs, errors) to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "print_json"]

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout, alone, for scripts."""
    print(json.dumps(data, indent=2, default=str))
