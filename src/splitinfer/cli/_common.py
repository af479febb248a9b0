"""Options shared by the commands that talk to a broker."""


import dataclasses
import signal
import threading
from typing import Any, Optional

import typer
from typing_extensions import Annotated

BrokerOpt = Annotated[
    Optional[str],
    typer.Option("--broker", envvar="SPLITINFER_BROKER_URL",
                 help="mqtt://host:1883 or mqtts://host:8883 (credentials: SPLITINFER_MQTT_USERNAME/PASSWORD)."),
]
FleetOpt = Annotated[str, typer.Option("--fleet", envvar="SPLITINFER_FLEET_NAME", help="Fleet name (topic prefix).")]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Topic root above the fleet.")]


def broker_config(url: Optional[str]) -> Any:
    """Broker settings from the environment, with ``url`` (when given) winning over SPLITINFER_BROKER_URL."""
    from splitinfer.broker.config import BrokerConfig

    config = BrokerConfig.from_env()
    if url:
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "url"}
        config = BrokerConfig.from_url(url, **options)
    return config


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so nodes finish their loop and say goodbye (state offline)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
