"""Graceful degradation's decisions (pure logic, times given explicitly)."""

from __future__ import annotations

from splitinfer.head.fallback import Fallback


def test_the_planned_mode_runs_while_all_is_well() -> None:
    f = Fallback()
    assert f.decide("split", allowed=True, route="tail-1", silent=False, now=0.0) == ("split", False)
    assert f.reason == ""


def test_no_live_tail_means_local_at_once() -> None:
    f = Fallback()
    assert f.decide("split", allowed=True, route="", silent=False, now=0.0) == ("local", False)
    assert f.reason == "no live tail"
    assert f.decide("offload", allowed=True, route="tail-1", silent=False, now=1.0) == ("offload", False)


def test_a_silent_tail_means_local_with_a_probe_every_few_seconds() -> None:
    f = Fallback(probe_every=2.0)
    modes = [f.decide("split", allowed=True, route="tail-1", silent=True, now=t / 10) for t in range(0, 45)]
    probes = [k / 10 for k, (_, probe) in enumerate(modes) if probe]
    assert probes == [0.0, 2.0, 4.0]
    assert all(mode == ("split" if probe else "local") for mode, probe in modes)
    assert "not answering" in f.reason
    assert f.decide("split", allowed=True, route="tail-1", silent=False, now=5.0) == ("split", False)


def test_a_link_that_refuses_frames_means_local_until_a_probe_gets_through() -> None:
    f = Fallback(probe_every=2.0)
    for _ in range(5):
        f.published(False)
    assert f.decide("split", allowed=True, route="t", silent=False, now=10.0) == ("split", True)  # a probe
    assert f.decide("split", allowed=True, route="t", silent=False, now=10.5) == ("local", False)
    assert "link" in f.reason
    f.published(True)  # the probe went out
    assert f.decide("split", allowed=True, route="t", silent=False, now=11.0) == ("split", False)


def test_an_operator_can_forbid_it_and_local_is_local() -> None:
    f = Fallback()
    assert f.decide("split", allowed=False, route="", silent=True, now=0.0) == ("split", False)
    assert f.decide("local", allowed=True, route="", silent=True, now=0.0) == ("local", False)
