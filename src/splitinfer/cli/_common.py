"""Options shared by the commands that talk to a broker."""


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
    """Broker settings from the environment, with ``url`` (when given) winning over SPLITINFER_BROKER_URL (so
    ``--broker mqtts://…`` with SPLITINFER_MQTT_CA_FILE is TLS, whatever the variable says)."""
    from splitinfer.broker.config import BrokerConfig

    return BrokerConfig.from_env(url=url)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, which also raise KeyboardInterrupt in the main thread: a node stops
    within a second whatever it is doing (loading a model, profiling, waiting), and its ``finally`` blocks still
    say goodbye (final metrics, state offline)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
