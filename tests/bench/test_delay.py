"""The delay relay adds the one-way delay it claims, each way, and passes every byte in order."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import List, Tuple

import pytest

from splitinfer.bench.delay import DelayRelay, parse_address
from splitinfer.errors import BenchError


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trips(port: int, n: int = 15, size: int = 200) -> Tuple[List[float], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rtts = []
    for k in range(n):
        t = time.perf_counter()
        writer.write(bytes([k]) * size)
        await writer.drain()
        await reader.readexactly(size)
        rtts.append((time.perf_counter() - t) * 1000.0)
    bulk = bytes(range(256)) * 4096  # 1 MiB, more than the relay may hold
    writer.write(bulk)
    await writer.drain()
    echoed = await reader.readexactly(len(bulk))
    writer.close()
    return rtts, echoed if echoed == bulk else b""


def test_the_relay_adds_its_delay_each_way() -> None:
    async def main() -> Tuple[float, float, bool, int]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        target = ("127.0.0.1", int(server.sockets[0].getsockname()[1]))
        direct, _ = await _round_trips(target[1])
        relay = DelayRelay(("127.0.0.1", 0), target, 15.0, max_buffer=256 * 1024)
        port = await relay.start()
        delayed, echoed = await _round_trips(port)
        await relay.close()
        server.close()
        await server.wait_closed()
        return statistics.median(direct), statistics.median(delayed), bool(echoed), relay.connections

    direct, delayed, intact, connections = asyncio.run(main())
    added = delayed - direct
    assert 30.0 <= added <= 30.0 + max(3.0, 0.15 * 30.0), (direct, delayed)  # twice 15 ms, and ~1 ms of timer
    assert intact and connections == 1


def test_only_local_addresses_are_relayed() -> None:
    assert parse_address("10.213.0.1:1883") == ("10.213.0.1", 1883)
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    for bad in ("8.8.8.8:53", "example.com:80", "127.0.0.1", "10.0.0.1:99999"):
        with pytest.raises(BenchError):
            parse_address(bad)
    with pytest.raises(BenchError, match="delay must be"):
        DelayRelay(("127.0.0.1", 0), ("127.0.0.1", 1), -1.0)
