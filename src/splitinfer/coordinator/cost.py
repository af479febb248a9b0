"""The cost model behind ``--cut auto``: predicted latency and throughput of every cut, from profiles.

Pure logic, no MQTT. Neurosurgeon-style (Kang et al., 2017): for a head, a tail and the link between them, a
frame cut at layer ``c`` costs

    head_ms(c)     = preprocess + head_scale × Σ head layer_ms[0:c] + encode_ms(c)
    transfer_ms(c) = (bytes(c) + per-message overhead) × wire overhead × 8 / bandwidth + RTT / 2
    tail_ms(c)     = decode_ms(c) × speed + tail_scale × Σ tail layer_ms[c:N] + postprocess

``head_scale``/``tail_scale`` (1 until a node reports otherwise) are what the nodes observe in service against
their profile (contention, throttling); see ``splitinfer.node.stats.Calibration``. Decoding runs on the tail but
is timed by the head (it owns the codec settings): ``speed`` = the tail's time for the whole model over the
head's (:func:`tail_speed`) carries that time over to the tail, so a slow camera's decode is not charged to a
fast server.

The two ends of the spectrum are costed the same way (:func:`mode_costs`): *local* (the whole model on the head,
nothing sent) and *offload* (the letterboxed frame in the fleet's image codec, measured by the head on its
calibration frames; the whole model on the tail).

and its latency is the sum. Features are published at QoS 0, one way, so half the measured round trip is
charged. A pipeline of one head and one tail sustains ``1 / max(head, transfer, tail)`` frames per second;
several heads sharing a tail share its time: :func:`best_shared` finds the cuts that maximise the frames per
second every head can sustain at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = [
    "CutCost", "Link", "best_latency", "best_shared", "cut_costs", "link_of", "mode_costs", "profile_matches",
    "resolve_cut", "shared_fps", "tail_speed",
]

MESSAGE_OVERHEAD = 96  # envelope + MQTT fixed header + topic, bytes
WIRE_OVERHEAD = 1.04  # TCP/IP headers per 1448-byte segment, and MQTT framing


@dataclass(frozen=True)
class Link:
    """A head's measured link to the broker."""

    bandwidth_bps: float
    rtt_ms: float

    def transfer_ms(self, nbytes: float) -> float:
        if self.bandwidth_bps <= 0:
            return float("inf")
        return (nbytes + MESSAGE_OVERHEAD) * WIRE_OVERHEAD * 8.0 / self.bandwidth_bps * 1000.0 + self.rtt_ms / 2.0


@dataclass(frozen=True)
class CutCost:
    """Predicted cost of one frame in ``mode`` (``split`` at layer ``cut``, ``local`` or ``offload``);
    ``tail_frame_ms`` is the tail's share at its batch size (what limits throughput when heads share the tail)."""

    cut: int
    bytes: float
    head_ms: float
    transfer_ms: float
    tail_ms: float
    tail_frame_ms: float
    mode: str = "split"

    @property
    def key(self) -> str:
        """``split:<cut>``, ``local`` or ``offload``: what an assignment would say."""
        return f"split:{self.cut}" if self.mode == "split" else self.mode

    @property
    def latency_ms(self) -> float:
        return self.head_ms + self.transfer_ms + self.tail_ms

    @property
    def period_ms(self) -> float:
        """The slowest stage: one head alone on its tail sustains 1000 / period_ms frames per second."""
        return max(self.head_ms, self.transfer_ms, self.tail_frame_ms)

    def to_dict(self) -> Dict[str, Any]:
        d = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
        d["latency_ms"] = round(self.latency_ms, 3)
        return d


def link_of(profile: Mapping[str, Any]) -> Optional[Link]:
    """The link measurement in a head's profile, if any."""
    link = profile.get("link") if profile else None
    if not isinstance(link, Mapping):
        return None
    try:
        bw, rtt = float(link["bandwidth_bps"]), float(link.get("rtt_ms", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    return Link(bw, rtt) if bw > 0 else None


def resolve_cut(profile: Mapping[str, Any], spec: str) -> Optional[int]:
    """A cut spec (``a|b|c|d`` or a number) as a layer number, using the presets the profile carries."""
    presets = profile.get("presets") or {}
    if spec in presets:
        return int(presets[spec])
    try:
        return int(spec)
    except ValueError:
        return None


def tail_speed(head: Mapping[str, Any], tail: Mapping[str, Any]) -> float:
    """How long the tail takes for what takes the head 1 ms: the ratio of their whole-model times (1 when either
    profile lacks them)."""
    hs, ts = float(head.get("head_scale") or 1.0), float(tail.get("tail_scale") or 1.0)
    h, t = hs * sum(head.get("layer_ms") or ()), ts * sum(tail.get("layer_ms") or ())
    return t / h if h > 0 and t > 0 else 1.0


def cut_costs(head: Mapping[str, Any], tail: Mapping[str, Any], link: Link,
              cuts: Optional[Sequence[int]] = None) -> List[CutCost]:
    """The predicted cost of every cut (or of ``cuts``) that the head's profile has payload sizes for."""
    hs, ts = float(head.get("head_scale") or 1.0), float(tail.get("tail_scale") or 1.0)
    head_layers: List[float] = [hs * v for v in head["layer_ms"]]
    tail_layers: List[float] = [ts * v for v in tail["layer_ms"]]
    batch_layers: List[float] = [ts * v for v in (tail.get("batch_layer_ms") or tail["layer_ms"])]
    if not (len(head_layers) == len(tail_layers) == len(batch_layers)):
        raise ValueError(f"profiles disagree on the number of layers: head {len(head_layers)}, "
                         f"tail {len(tail_layers)}")
    pre, post = float(head.get("preprocess_ms", 0.0)), float(tail.get("postprocess_ms", 0.0))
    sizes: Mapping[str, Mapping[str, float]] = head.get("cuts") or {}
    speed = tail_speed(head, tail)
    out = []
    for key, size in sorted(sizes.items(), key=lambda kv: int(kv[0])):
        c = int(key)
        if not 1 <= c < len(head_layers) or (cuts is not None and c not in cuts):
            continue
        decode = float(size.get("decode_ms", 0.0)) * speed
        out.append(CutCost(
            cut=c, bytes=float(size["bytes"]),
            head_ms=pre + sum(head_layers[:c]) + float(size.get("encode_ms", 0.0)),
            transfer_ms=link.transfer_ms(float(size["bytes"])),
            tail_ms=decode + sum(tail_layers[c:]) + post,
            tail_frame_ms=decode + sum(batch_layers[c:]) + post,
        ))
    return out


def mode_costs(head: Mapping[str, Any], tail: Mapping[str, Any], link: Link, *,
               offload: Optional[str] = None) -> List[CutCost]:
    """The predicted cost of local mode and, when ``offload`` names an image format the head measured, of
    offload with it."""
    hs, ts = float(head.get("head_scale") or 1.0), float(tail.get("tail_scale") or 1.0)
    pre, post = float(head.get("preprocess_ms", 0.0)), float(tail.get("postprocess_ms", 0.0))
    here_post = float(head.get("whole_postprocess_ms") or post)
    out = [CutCost(cut=0, bytes=0.0, head_ms=pre + hs * sum(head["layer_ms"]) + here_post, transfer_ms=0.0,
                   tail_ms=0.0, tail_frame_ms=0.0, mode="local")]
    image = (head.get("images") or {}).get(offload) if offload else None
    if image:
        decode = float(image.get("decode_ms", 0.0)) * tail_speed(head, tail)
        whole = ts * sum(tail["layer_ms"])
        batched = ts * sum(tail.get("batch_layer_ms") or tail["layer_ms"])
        out.append(CutCost(cut=0, bytes=float(image["bytes"]), head_ms=pre + float(image.get("encode_ms", 0.0)),
                           transfer_ms=link.transfer_ms(float(image["bytes"])), tail_ms=decode + whole + post,
                           tail_frame_ms=decode + batched + post, mode="offload"))
    return out


def best_latency(costs: Sequence[CutCost], *, keep: Optional[str] = None, hysteresis: float = 0.03) -> CutCost:
    """The mode (and cut) with the lowest predicted latency; ``keep`` (the current one, by ``CutCost.key``)
    stays unless the best beats it by more than ``hysteresis`` (a fraction), so noise in the measurements does
    not flip it back and forth."""
    best = min(costs, key=lambda c: (c.latency_ms, c.cut))
    current = next((c for c in costs if c.key == keep), None)
    if current is not None and current.latency_ms <= best.latency_ms * (1.0 + hysteresis):
        return current
    return best


def best_shared(candidates: Mapping[str, Sequence[CutCost]], *, iterations: int = 60) -> Dict[str, CutCost]:
    """Cuts for heads that share one tail, maximising the frame rate every head sustains at once.

    At a period ``T`` (ms per frame, for every head) a head's cut is feasible when its head and transfer
    stages each fit in ``T``; the tail runs every head's frames, so the heads' tail shares must add up to at
    most ``T``. The smallest feasible ``T`` is found by bisection, taking for each head the feasible cut with
    the least tail time; among cuts with equal tail time, the lower latency wins.
    """

    def pick(period: float) -> Optional[Dict[str, CutCost]]:
        chosen: Dict[str, CutCost] = {}
        for head, costs in candidates.items():
            fits = [c for c in costs if c.head_ms <= period and c.transfer_ms <= period]
            if not fits:
                return None
            chosen[head] = min(fits, key=lambda c: (c.tail_frame_ms, c.latency_ms, c.cut))
        return chosen if sum(c.tail_frame_ms for c in chosen.values()) <= period else None

    everything = [c for costs in candidates.values() for c in costs]
    if not everything:
        return {}
    lo, hi = 0.0, sum(max(c.period_ms for c in costs) for costs in candidates.values()) + max(
        c.head_ms + c.transfer_ms + c.tail_frame_ms for c in everything)
    result = pick(hi)
    if result is None:  # cannot happen with finite costs; be safe with infinite transfer times
        return {h: min(costs, key=lambda c: c.latency_ms) for h, costs in candidates.items() if costs}
    for _ in range(iterations):
        mid = (lo + hi) / 2.0
        found = pick(mid)
        if found is None:
            lo = mid
        else:
            hi, result = mid, found
    return result


def shared_fps(chosen: Mapping[str, CutCost]) -> float:
    """Frames per second each head sustains when they share a tail with these cuts."""
    if not chosen:
        return 0.0
    period = max(max(max(c.head_ms, c.transfer_ms) for c in chosen.values()),
                 sum(c.tail_frame_ms for c in chosen.values()))
    return 1000.0 / period if period > 0 else float("inf")


def profile_matches(profile: Mapping[str, Any], *, model: str, imgsz: int,
                    codec: Optional[Mapping[str, Any]] = None, tables: Sequence[str] = ()) -> bool:
    """Whether ``profile`` was measured for this model name and input size (and, for heads, codec settings and
    calibration tables, by their sha256)."""
    if not profile or profile.get("model") != model or profile.get("imgsz") != imgsz:
        return False
    if not isinstance(profile.get("layer_ms"), list):
        return False
    return codec is None or (profile.get("codec") == dict(codec) and list(profile.get("tables") or []) == list(tables))
