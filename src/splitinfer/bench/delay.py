"""A TCP relay that adds a fixed one-way delay in both directions: link latency where the kernel has no ``netem``.

``bench e2e`` runs it in the head's network namespace: the head connects to the relay on the namespace's
loopback, the relay connects to the broker across the tbf-shaped veth, and every chunk it reads waits
``delay_ms`` before it is written on, each way; the round trip grows by twice the delay, the rate stays the
veth's. ::

    python -m splitinfer.bench.delay --listen 127.0.0.1:18830 --to 10.213.0.1:1883 --delay-ms 20
    # prints one line, "ready <port>", once it listens

Bounded: at most ``max_buffer`` bytes wait in each direction (the reader stops until the writer catches up, so
TCP's flow control reaches the sender). Only loopback and private (namespace) addresses are accepted. What it
does not emulate: a long path's effect on TCP itself (window growth, loss); the TCP hops it joins are ~0.1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import sys
import time
from collections import deque
from typing import Deque, List, Optional, Set, Tuple

from splitinfer.errors import BenchError

__all__ = ["DelayRelay", "main", "parse_address"]

CHUNK = 64 * 1024
MAX_BUFFER = 8 * 1024 * 1024


def parse_address(text: str) -> Tuple[str, int]:
    """``HOST:PORT`` with a loopback or private IPv4 host (nothing here may reach past this machine)."""
    host, sep, port = text.rpartition(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise BenchError(f"delay relay: {text!r} is not HOST:PORT with an IP address") from None
    if not sep or not (address.is_loopback or address.is_private) or not 0 <= number < 65536:
        raise BenchError(f"delay relay: {text!r}: only loopback or private (namespace) addresses are allowed")
    return host, number


class _Line:
    """One direction: chunks with the time they may be written, at most ``limit`` bytes waiting."""

    def __init__(self, delay_s: float, limit: int) -> None:
        self.delay_s, self.limit = delay_s, limit
        self.chunks: Deque[Tuple[float, bytes]] = deque()
        self.size = 0
        self.closed = False
        self.changed = asyncio.Event()

    async def put(self, data: bytes) -> None:
        while self.size + len(data) > self.limit and self.chunks:
            self.changed.clear()
            await self.changed.wait()
        self.chunks.append((time.monotonic() + self.delay_s, data))
        self.size += len(data)
        self.changed.set()

    async def get(self) -> Optional[bytes]:
        """The next chunk when it is due; None once closed and empty."""
        while not self.chunks:
            if self.closed:
                return None
            self.changed.clear()
            await self.changed.wait()
        due, data = self.chunks[0]
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.chunks.popleft()
        self.size -= len(data)
        self.changed.set()
        return data

    def close(self) -> None:
        self.closed = True
        self.changed.set()


class DelayRelay:
    """Accepts on ``listen`` and relays each connection to ``target`` with ``delay_ms`` added each way."""

    def __init__(self, listen: Tuple[str, int], target: Tuple[str, int], delay_ms: float, *,
                 max_buffer: int = MAX_BUFFER) -> None:
        if not 0.0 <= delay_ms <= 10_000.0:
            raise BenchError(f"delay relay: delay must be 0..10000 ms, got {delay_ms:g}")
        self.listen, self.target, self.delay_s, self.max_buffer = listen, target, delay_ms / 1000.0, max_buffer
        self.server: Optional[asyncio.base_events.Server] = None
        self.connections = 0
        self._serving: Set[asyncio.Task] = set()

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        self.server = await asyncio.start_server(self._serve, *self.listen)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        if self.server is not None:
            self.server.close()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        tasks: List[asyncio.Task] = []
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            line = _Line(self.delay_s, self.max_buffer)
            tasks += [asyncio.ensure_future(self._read(src, line)), asyncio.ensure_future(self._write(line, dst))]
        try:
            await asyncio.gather(*tasks)
        except OSError:  # a reset connection: both directions end
            pass
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    @staticmethod
    async def _read(src: asyncio.StreamReader, line: _Line) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                await line.put(data)
        finally:
            line.close()

    @staticmethod
    async def _write(line: _Line, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await line.get()
            if data is None:
                with contextlib.suppress(OSError):
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()


async def _run(args: argparse.Namespace) -> None:
    relay = DelayRelay(parse_address(args.listen), parse_address(args.to), args.delay_ms)
    port = await relay.start()
    print(f"ready {port}", flush=True)
    assert relay.server is not None
    await relay.server.serve_forever()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitinfer.bench.delay", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on (loopback or private)")
    parser.add_argument("--to", required=True, help="HOST:PORT to relay to (loopback or private)")
    parser.add_argument("--delay-ms", type=float, required=True, help="added one-way delay, each direction")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
