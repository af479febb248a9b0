"""The embedded broker: amqtt (pure Python, MQTT 3.1.1) in its own process.

    python -m splitinfer.broker.embedded --port 1883 [--host 127.0.0.1]

Used by `splitinfer.broker.local.start_local_broker` when Mosquitto is not installed. It runs in a
subprocess so it never shares a GIL with a node. Anonymous access is on: bind it to loopback (the default).
amqtt needs Python >= 3.10 and is imported only here, inside `serve`.

amqtt's defaults that matter here: it has no message size limit (every MQTT-valid payload is forwarded), and
its default plugins log every packet and publish $SYS topics; we load only anonymous authentication.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, Dict, List, Optional

__all__ = ["broker_config", "main", "serve"]

READY_LINE = "splitinfer embedded broker ready"


def broker_config(host: str, port: int) -> Dict[str, Any]:
    """amqtt's configuration for one plain TCP listener with anonymous access."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve(host: str, port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker  # Python >= 3.10

    broker = Broker(broker_config(host, port))
    await broker.start()
    print(READY_LINE, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitinfer.broker.embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):
        print("the embedded broker (amqtt) needs Python >= 3.10; install mosquitto instead", file=sys.stderr)
        return 2
    try:
        import amqtt  # noqa: F401
    except ImportError:
        print("the embedded broker needs amqtt: pip install 'splitinfer[broker]'", file=sys.stderr)
        return 2
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
