"""A node stand-in for the last-will test: connect with a state topic, say "ready", wait to be killed.

python tests/broker/will_client.py URL STATE_TOPIC
"""

from __future__ import annotations

import sys
import time

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig

if __name__ == "__main__":
    url, state_topic = sys.argv[1:3]
    client = MqttClient(BrokerConfig(url, keepalive=60), state_topic=state_topic)
    client.connect(timeout=5)
    client.publish(state_topic, "online", qos=1, retain=True, timeout=5)  # on the broker before "ready"
    print("ready", flush=True)
    time.sleep(60)
