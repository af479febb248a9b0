"""Cut and route assignment: pure logic, no MQTT.

Given the devices the coordinator knows (role, online or not), the fleet policy (model, default cut and codec,
per-device overrides) and the previous assignments, :func:`plan` returns the assignments every device should
have now. Routes are stable: a head stays on its tail while that tail is live and not over its fair share;
the others go to the least-loaded live tail. A device's generation grows only when its assignment changes.

A head's ``cut`` (fleet-wide or per device) is a split (``a|b|c|d`` or a layer number), ``local`` (the whole
model on the head), ``offload`` (its frames to the tail: only for heads the operator allowed, ``Policy.offload``;
for any other head the planner splits at ``auto_fallback`` instead and says why) or ``auto``. ``auto`` picks
among every split cut, local, and offload where allowed, from the profiles the nodes report
(``DeviceInfo.profile``) with the cost model in :mod:`.cost`: the lowest predicted latency for a head alone on
its tail, the highest sustainable frame rate for heads that share one (local costs the tail nothing). Until
both profiles (and the head's link measurement) are in, the head gets ``auto_fallback`` and the reason says what
is missing; with no live tail at all, ``local``. Every head whose profiles are known gets the prediction for its
mode in its assignment, auto or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Collection, Dict, List, Mapping, Optional

from splitinfer.broker.messages import Assignment, Override, Policy

from .cost import (
    CutCost,
    best_latency,
    best_shared,
    cut_costs,
    link_of,
    mode_costs,
    profile_matches,
    resolve_cut,
    shared_fps,
)

__all__ = ["AUTO", "DeviceState", "plan"]

AUTO = "auto"
MODES_AS_CUTS = ("local", "offload")


@dataclass(frozen=True)
class DeviceState:
    id: str
    role: str
    online: bool


def plan(
    devices: Mapping[str, DeviceState],
    policy: Policy,
    previous: Mapping[str, Assignment],
    profiles: Optional[Mapping[str, Mapping[str, Any]]] = None,
    *,
    epoch: float = 0.0,
    unready: Collection[str] = (),
) -> Dict[str, Assignment]:
    """Assignments for every known head and tail (offline heads keep theirs; offline tails get none).
    ``profiles``: each device's reported profile (``DeviceInfo.profile``), for ``cut="auto"`` and predictions.
    ``epoch``: this coordinator's start; an assignment from another epoch is issued again in this one, so nodes
    that hold a newer generation of an older epoch follow it. ``unready``: live tails that do not serve yet (their
    model is loading): they get their assignment, but no heads until they serve."""
    tails = sorted(d.id for d in devices.values() if d.role == "tail" and d.online)
    heads = sorted(d.id for d in devices.values() if d.role == "head" and d.online)
    current = {h: previous[h].route for h in heads if h in previous}
    routes = _routes(heads, [t for t in tails if t not in unready], current)
    wanted: Dict[str, Assignment] = {}
    for head in heads:
        o = policy.overrides.get(head, Override())
        wanted[head] = Assignment(
            generation=0, model=policy.model, sha256=policy.sha256, imgsz=policy.imgsz, cut=o.cut or policy.cut,
            codec={**policy.codec, **o.codec}, tables=list(policy.tables), route=routes.get(head, ""),
            batch=o.batch or policy.batch,
            image=dict(policy.image), fallback=head not in policy.no_fallback,
        )
        if wanted[head].cut == "offload" and not policy.may_offload(head):
            wanted[head] = replace(wanted[head], cut=policy.auto_fallback, reason=(
                f"offload is not allowed for {head} (allow_offload in fleet.yaml): its frames stay on the camera; "
                f"split at {policy.auto_fallback}"))
    for tail in tails:
        served = [h for h in heads if routes.get(h) == tail]
        wanted.update(_choose_cuts(served, tail, wanted, policy, previous, profiles or {}))
    for head in heads:
        if wanted[head].cut == AUTO:  # no live tail to plan against
            wanted[head] = replace(wanted[head], cut="local", reason="auto: no live tail; local meanwhile") if (
                wanted[head].fallback) else replace(wanted[head], cut=policy.auto_fallback, reason=(
                    f"auto: no live tail; the fallback cut {policy.auto_fallback} meanwhile"))
        wanted[head] = _as_mode(wanted[head])
    for tail in tails:
        wanted[tail] = Assignment(
            generation=0, model=policy.model, sha256=policy.sha256, imgsz=policy.imgsz, cut="", batch=policy.tail_batch,
            max_wait_ms=policy.max_wait_ms, heads=sorted(h for h, t in routes.items() if t == tail),
            tables=list(policy.tables),
        )
    result = {}
    for device, assignment in wanted.items():
        before = previous.get(device)
        if before is not None and before.epoch == epoch and replace(before, generation=0) == replace(
                assignment, epoch=epoch):
            result[device] = before
        else:
            result[device] = replace(assignment, epoch=epoch, generation=(before.generation + 1) if before else 1)
    for device, before in previous.items():  # offline heads keep their last word; it is retained anyway
        if device not in result and device in devices and devices[device].role == "head":
            result[device] = before
    return result


def _as_mode(a: Assignment) -> Assignment:
    """``cut`` local/offload as the assignment's mode (its cut then empty); a split keeps its cut."""
    return replace(a, mode=a.cut, cut="") if a.cut in MODES_AS_CUTS else replace(a, mode="split")


def _choose_cuts(
    heads: List[str], tail: str, wanted: Mapping[str, Assignment], policy: Policy,
    previous: Mapping[str, Assignment], profiles: Mapping[str, Mapping[str, Any]],
) -> Dict[str, Assignment]:
    """The heads served by ``tail`` with their cuts resolved (auto) and explained (all)."""
    tail_profile = profiles.get(tail) or {}
    tail_ok = profile_matches(tail_profile, model=policy.model, imgsz=policy.imgsz)
    candidates: Dict[str, List[CutCost]] = {}
    out: Dict[str, Assignment] = {}
    for head in heads:
        a = wanted[head]
        auto = a.cut == AUTO
        missing = _missing(head, tail, profiles.get(head) or {}, tail_ok, a, policy)
        if missing:
            out[head] = replace(a, cut=policy.auto_fallback, reason=f"auto: {missing}; running the fallback cut "
                                f"{policy.auto_fallback} meanwhile") if auto else replace(a, reason=a.reason or (
                                    "fixed cut" if a.cut not in MODES_AS_CUTS else f"fixed mode {a.cut}"))
            continue
        head_profile = profiles[head]
        link = link_of(head_profile)
        assert link is not None
        offload = a.image.get("format") if policy.may_offload(head) else None
        try:
            if auto:
                costs = (cut_costs(head_profile, tail_profile, link) +
                         mode_costs(head_profile, tail_profile, link, offload=offload))
            elif a.cut in MODES_AS_CUTS:
                costs = [c for c in mode_costs(head_profile, tail_profile, link, offload=offload) if c.mode == a.cut]
            else:
                costs = cut_costs(head_profile, tail_profile, link, cuts=[resolve_cut(head_profile, a.cut) or -1])
        except (KeyError, TypeError, ValueError) as exc:  # profiles of different models, or incomplete ones
            out[head] = replace(a, cut=policy.auto_fallback if auto else a.cut,
                                reason=f"{'auto: ' if auto else ''}no prediction: {exc}")
            continue
        if costs:
            candidates[head] = costs
        else:
            out[head] = replace(a, reason=a.reason or f"cut {a.cut}: not in {head}'s profile; no prediction")
    if len(candidates) == 1:
        head, costs = next(iter(candidates.items()))
        keep = _previous_cut(previous.get(head))
        chosen = {head: best_latency(costs, keep=keep)}
        fps = {head: 1000.0 / chosen[head].period_ms}
        why = "lowest predicted latency"
    else:
        chosen = best_shared(candidates)
        fps = dict.fromkeys(chosen, shared_fps(chosen))
        why = f"highest sustainable fps for the {len(candidates)} heads sharing tail {tail}"
    for head, cost in chosen.items():
        a = wanted[head]
        link = link_of(profiles[head])
        assert link is not None
        if a.cut == AUTO:
            modes = sorted({c.mode for c in candidates[head]})
            reason = (f"auto: {why} on a {link.bandwidth_bps / 1e6:.3g} Mbit/s, {link.rtt_ms:.3g} ms RTT link "
                      f"({len(candidates[head])} options: {', '.join(modes)})")
            cut = str(cost.cut) if cost.mode == "split" else cost.mode
        else:
            reason = a.reason or (f"fixed cut {a.cut}" if a.cut not in MODES_AS_CUTS else f"fixed mode {a.cut}")
            cut = a.cut
        out[head] = replace(
            a, cut=cut, reason=reason,
            predicted_ms=round(cost.latency_ms, 2), predicted_fps=round(fps[head], 2),
            prediction=dict(cost.to_dict(), bandwidth_bps=round(link.bandwidth_bps), rtt_ms=round(link.rtt_ms, 3),
                            head_scale=float(profiles[head].get("head_scale") or 1.0),
                            tail_scale=float((profiles.get(tail) or {}).get("tail_scale") or 1.0)),
        )
    return out


def _missing(head: str, tail: str, head_profile: Mapping[str, Any], tail_ok: bool, a: Assignment,
             policy: Policy) -> str:
    """What the cost model still lacks for ``head`` (empty when nothing)."""
    lacking = []
    if not profile_matches(head_profile, model=policy.model, imgsz=policy.imgsz, codec=a.codec,
                           tables=[t.sha256 for t in a.tables]):
        lacking.append(f"{head}'s profile")
    elif link_of(head_profile) is None:
        lacking.append(f"{head}'s link measurement")
    if not tail_ok:
        lacking.append(f"{tail}'s profile")
    return "waiting for " + " and ".join(lacking) if lacking else ""


def _previous_cut(before: Optional[Assignment]) -> Optional[str]:
    """What an earlier auto plan chose (``CutCost.key``), so a near tie does not flip it."""
    if before is None or not before.reason.startswith(AUTO):
        return None
    return f"split:{before.cut}" if before.mode == "split" else before.mode


def _routes(heads: List[str], tails: List[str], current: Mapping[str, str]) -> Dict[str, str]:
    if not tails:
        return {}
    fair = math.ceil(len(heads) / len(tails))
    load = dict.fromkeys(tails, 0)
    routes: Dict[str, str] = {}
    for head in heads:  # keep live routes up to each tail's fair share
        tail = current.get(head)
        if tail in load and load[tail] < fair:
            routes[head] = tail
            load[tail] += 1
    for head in heads:
        if head not in routes:
            tail = min(tails, key=lambda t: (load[t], t))
            routes[head] = tail
            load[tail] += 1
    return routes
