"""One job at a time on a daemon thread, e.g. measuring a profile while the node already serves frames.

A node answers its assignment and SIGTERM at once; a profile takes seconds (tens on a slow CPU). So profiles are
measured here, beside the serving loop (which they slow down meanwhile), and reported when they are done.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

__all__ = ["OneAtATime"]


class OneAtATime:
    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name, self.log = name, log
        self._thread: Optional[threading.Thread] = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[], None]) -> bool:
        """Run ``job`` on a thread unless one is still running (False then); its exceptions are logged."""
        if self.busy:
            return False

        def run() -> None:
            try:
                job()
            except Exception:  # the node runs on without it; only what needed it (--cut auto) misses it
                self.log.exception("%s failed", self.name)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
