"""Two network namespaces joined by a veth pair, with the link shaped by tc: a head and a tail on one machine
that talk over a link of known speed.

    with NetnsPair.create() as pair:          # needs root and iproute2; namespaces are removed on exit
        pair.shape(rate_mbit=20)              # tbf on both ends of the veth
        subprocess.run(pair.exec("head", "ping", "-c1", pair.tail_ip))

Addresses are private (10.213.x.0/30) and exist only inside the two namespaces: no traffic leaves this machine.
Delay is added by a relay in the head's namespace (:mod:`.delay`): these kernels have no ``netem``
(:func:`netem_available` says whether this one does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Sequence

from splitinfer.errors import NetnsError

__all__ = ["NetnsError", "NetnsPair", "netem_available", "netns_unavailable_reason"]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done


def netns_unavailable_reason() -> Optional[str]:
    """Why namespaces cannot be made here (None if they can): not root, or no ``ip``/``tc``."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt install iproute2)"
    return None


@dataclass
class NetnsPair:
    """``head`` and ``tail`` namespaces; ``head_if``/``tail_if`` are the veth ends inside them."""

    head_ns: str
    tail_ns: str
    head_if: str
    tail_if: str
    head_ip: str
    tail_ip: str
    rate_mbit: Optional[float] = None

    @classmethod
    def create(cls, tag: Optional[str] = None, subnet: int = 0) -> NetnsPair:
        """Make the namespaces, the veth pair and the addresses (``10.213.<subnet>.1`` tail, ``.2`` head)."""
        reason = netns_unavailable_reason()
        if reason:
            raise NetnsError(reason)
        tag = tag or str(os.getpid() % 100000)
        pair = cls(f"si{tag}h", f"si{tag}t", f"si{tag}h0", f"si{tag}t0", f"10.213.{subnet}.2", f"10.213.{subnet}.1")
        try:
            pair._build()
        except NetnsError:
            pair.delete()
            raise
        return pair

    def _build(self) -> None:
        for ns in (self.head_ns, self.tail_ns):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", self.head_if, "netns", self.head_ns, "type", "veth", "peer", "name", self.tail_if,
             "netns", self.tail_ns)
        for ns, dev, ip in ((self.head_ns, self.head_if, self.head_ip), (self.tail_ns, self.tail_if, self.tail_ip)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")

    def shape(self, rate_mbit: Optional[float]) -> None:
        """Limit both directions to ``rate_mbit`` with tbf (None: remove the limit)."""
        for ns, dev in ((self.head_ns, self.head_if), (self.tail_ns, self.tail_if)):
            _run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
            if rate_mbit is not None:
                rate_bytes = rate_mbit * 1e6 / 8
                burst = max(4096, int(rate_bytes / 1000))  # small: a big bucket would hide the rate for a frame
                limit = max(256 * 1024, int(rate_bytes * 0.5))  # half a second of queue: TCP backs off, no drops
                _run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rate_mbit}mbit",
                     "burst", str(burst), "limit", str(limit))
        self.rate_mbit = rate_mbit

    def exec(self, side: str, *argv: str) -> List[str]:
        """A command line that runs ``argv`` inside the ``head`` or ``tail`` namespace."""
        ns = {"head": self.head_ns, "tail": self.tail_ns}[side]
        return ["ip", "netns", "exec", ns, *argv]

    def delete(self) -> None:
        """Remove both namespaces (and so the veth pair). Idempotent."""
        for ns in (self.head_ns, self.tail_ns):
            _run("ip", "netns", "del", ns, check=False)

    def __enter__(self) -> NetnsPair:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


def netem_available(pair: Optional[NetnsPair] = None) -> bool:
    """Whether this kernel has ``sch_netem`` (tried on the pair's loopback, or a scratch namespace)."""
    owned = None
    try:
        if pair is None:
            owned = pair = NetnsPair.create(tag=f"{os.getpid() % 100000}n", subnet=254)
        done = _run("tc", "-n", pair.tail_ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                    check=False)
        _run("tc", "-n", pair.tail_ns, "qdisc", "del", "dev", "lo", "root", check=False)
        return done.returncode == 0
    finally:
        if owned is not None:
            owned.delete()


def delete_stale(prefixes: Sequence[str] = ("si",)) -> None:  # pragma: no cover - manual cleanup helper
    """Remove namespaces left by a killed bench (names ``si<digits>h|t``)."""
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if any(name.startswith(p) for p in prefixes) and name[-1:] in ("h", "t") and name[2:-1].isdigit():
            _run("ip", "netns", "del", name, check=False)
