"""``splitctl bench broker``: latency of one publish -> subscribe through MqttClient, per payload size and local
broker kind.

    splitctl bench broker [--kinds mosquitto,embedded] [--n 30]

Prints a table and writes JSON; never fails on a timing.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Sequence

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import start_local_broker
from splitinfer.node.stats import percentile

__all__ = ["SIZES", "measure", "run_broker_latency"]

SIZES = [1_000, 150_000, 1_000_000, 6_000_000]


def measure(url: str, size: int, n: int) -> Dict[str, float]:
    with MqttClient(BrokerConfig(url)) as sub_client, MqttClient(BrokerConfig(url)) as pub_client:
        sub = sub_client.subscribe("bench/x", maxsize=n + 1)
        payload = os.urandom(size)
        times: List[float] = []
        for _ in range(n):
            start = time.monotonic()
            pub_client.publish("bench/x", payload)
            msg = sub.get(timeout=10)
            assert msg is not None
            times.append((msg.received_monotonic - start) * 1000)
    times.sort()
    return {"p50_ms": round(percentile(times, 0.5), 3), "p90_ms": round(percentile(times, 0.9), 3)}


def run_broker_latency(kinds: Sequence[str] = ("mosquitto", "embedded"), *, n: int = 30,
                       sizes: Sequence[int] = SIZES) -> Dict[str, Any]:
    """p50/p90 of ``n`` publish → receive round trips per payload size, on each local broker kind."""
    rows: List[Dict[str, Any]] = []
    for kind in kinds:
        with start_local_broker(prefer=kind) as broker:
            for size in sizes:
                rows.append({"broker": broker.kind, "bytes": size, **measure(broker.url, size, n)})
    return {"n": n, "rows": rows}
