"""Network namespaces joined by a veth pair, shaped with tbf: the link really runs at the set rate.

Needs root and iproute2. Skipped (with the reason) where they are missing, except under CI=true, where
scripts/system-deps installs them and a missing tool must fail the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Iterator

import pytest

from splitinfer.bench.netns import NetnsPair, netem_available, netns_unavailable_reason

RECEIVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 5001)); s.listen()
print("ready", flush=True)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    n += len(d)
c.sendall(b"k"); print(n, flush=True)
"""
SENDER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 5001)); t = time.perf_counter()
s.sendall(bytes(int(sys.argv[2]))); s.shutdown(socket.SHUT_WR); s.recv(1)
print(time.perf_counter() - t)
"""


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    reason = netns_unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the namespace tests: {reason}")
        pytest.skip(reason)
    with NetnsPair.create(tag=f"{os.getpid() % 100000}x", subnet=253) as made:
        yield made


def transfer_mbit(pair: NetnsPair, nbytes: int) -> float:
    receiver = subprocess.Popen(pair.exec("tail", sys.executable, "-c", RECEIVER), stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        done = subprocess.run(pair.exec("head", sys.executable, "-c", SENDER, pair.tail_ip, str(nbytes)),
                              capture_output=True, text=True, timeout=60, check=True)
        assert int(receiver.stdout.readline()) == nbytes
        return nbytes * 8 / float(done.stdout) / 1e6
    finally:
        receiver.kill()
        receiver.wait()


def test_tbf_limits_the_veth_to_the_set_rate(pair: NetnsPair) -> None:
    pair.shape(20)
    shaped = transfer_mbit(pair, 1_500_000)
    assert 14 <= shaped <= 22, shaped
    pair.shape(None)
    assert transfer_mbit(pair, 1_500_000) > 2 * shaped


def test_namespaces_are_removed_on_exit() -> None:
    reason = netns_unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with NetnsPair.create(tag=f"{os.getpid() % 100000}y", subnet=252) as made:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert made.head_ns in names and made.tail_ns in names
        assert isinstance(netem_available(made), bool)  # these kernels say False; either way no error
    time.sleep(0.1)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert made.head_ns not in names and made.tail_ns not in names
