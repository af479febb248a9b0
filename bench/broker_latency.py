"""Round-trip latency of one publish -> subscribe through MqttClient, per payload size and local broker kind.

    python bench/broker_latency.py [--kinds mosquitto embedded] [--n 30] [--json bench/results/broker_latency.json]

Prints a table and writes JSON; never fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Dict, List

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import start_local_broker

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
    return {"p50_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["mosquitto", "embedded"])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--json", default="bench/results/broker_latency.json")
    args = parser.parse_args()
    results = []
    for kind in args.kinds:
        with start_local_broker(prefer=kind) as broker:
            for size in SIZES:
                row = {"broker": broker.kind, "bytes": size, **measure(broker.url, size, args.n)}
                print(f"{row['broker']:>10} {size:>10} B  p50 {row['p50_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f} ms")
                results.append(row)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
