from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from splitinfer.broker.local import LocalBroker, find_mosquitto, start_local_broker

from .harness import Cluster


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """A fresh Mosquitto for one test (tests restart it, or leave retained state behind)."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/system-deps installs it)")
    with start_local_broker(prefer="mosquitto") as b:
        yield b


@pytest.fixture
def cluster(broker: LocalBroker, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(broker.url, tmp_path)
    yield c
    c.close()


