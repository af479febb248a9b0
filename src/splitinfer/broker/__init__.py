"""The MQTT side of splitinfer: topics, broker config, the paho client wrapper, local and deployable brokers.

    topics.py          the topic tree of a fleet (pure logic)
    config.py          BrokerConfig: URL, credentials, TLS, limits
    client.py          MqttClient: reconnect, last will, bounded queues, payload limits, counters
    local.py           start_local_broker(): Mosquitto if installed, else the embedded amqtt broker
    embedded.py        the amqtt broker process (python -m splitinfer.broker.embedded)
    mosquitto_conf.py  mosquitto.conf, password file and ACL for a production fleet broker

Nothing here imports torch, docker or typer. Names are imported lazily so ``import splitinfer.broker.topics``
does not pay for paho.
"""

from __future__ import annotations

import importlib
from typing import Any, List

_EXPORTS = {
    "Topics": "splitinfer.broker.topics",
    "ParsedTopic": "splitinfer.broker.topics",
    "BrokerConfig": "splitinfer.broker.config",
    "MqttClient": "splitinfer.broker.client",
    "Message": "splitinfer.broker.client",
    "Subscription": "splitinfer.broker.client",
    "Will": "splitinfer.broker.client",
    "LocalBroker": "splitinfer.broker.local",
    "start_local_broker": "splitinfer.broker.local",
    "MosquittoFiles": "splitinfer.broker.mosquitto_conf",
    "render_mosquitto_files": "splitinfer.broker.mosquitto_conf",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'splitinfer.broker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
