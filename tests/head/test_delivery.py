"""Acknowledgements, loss and clock offsets from detection records (pure logic, times given explicitly)."""

from __future__ import annotations

from splitinfer.head.delivery import Delivery


def record(seq: int, sent: float, received: float, published: float) -> dict:
    return {"seq": seq, "clock": {"sent": sent, "received": received, "published": published}}


def test_acknowledged_frames_are_counted_and_the_rest_lost_after_a_while() -> None:
    d = Delivery(lost_after=5.0)
    d.note_sent([1, 2, 3], now=0.0)
    assert d.note_record(record(2, 0, 0, 0), 0.1, now=0.5)
    assert d.expire(now=4.0) == 0
    assert d.expire(now=5.5) == 2
    assert d.counts()["frames_acked"] == 1 and d.counts()["frames_lost"] == 2


def test_a_late_acknowledgement_takes_the_frame_back_from_the_lost() -> None:
    d = Delivery(lost_after=1.0)
    d.note_sent([7], now=0.0)
    d.expire(now=2.0)
    assert d.lost == 1
    assert d.note_record({"seq": 7}, 0.0, now=3.0)
    assert (d.lost, d.acked) == (0, 1)


def test_a_slow_tail_is_given_more_time_before_frames_count_lost() -> None:
    d = Delivery(lost_after=1.0)
    for k in range(10):
        d.note_sent([k], now=float(k))
        d.note_record({"seq": k}, 0.0, now=k + 2.0)  # every frame takes 2 s
    d.note_sent([99], now=100.0)
    assert d.expire(now=105.0) == 0  # 4 × 2 s have not passed
    assert d.expire(now=108.5) == 1


def test_garbage_records_are_ignored_not_raised() -> None:
    d = Delivery()
    d.note_sent([1], now=0.0)
    for junk in (None, [], "x", {"seq": "1"}, {"seq": True}, {"seq": 5}, {"seq": 1, "clock": {"sent": "a"}}):
        d.note_record(junk, 0.0, now=0.1)
    assert d.acked == 1 and d.unexpected == 6 and d.clock_offset_ms == 0.0


def test_the_clock_offset_comes_from_the_fastest_round_trip() -> None:
    d = Delivery()
    d.note_sent([1, 2], now=0.0)
    # the tail's clock is 300 s ahead; one slow exchange (uneven delays) and one fast
    d.note_record(record(1, 1000.0, 1300.5, 1300.6), 1001.5, now=0.1)  # round trip 1.4 s, uneven
    d.note_record(record(2, 1000.0, 1300.01, 1300.02), 1000.03, now=0.2)  # round trip 0.02 s
    assert abs(d.clock_offset_ms - 300_000.0) < 1.0


def test_silence_is_a_frame_waiting_with_no_answer_for_a_while() -> None:
    d = Delivery(silent_after=3.0)
    d.note_sent([1], now=0.0)
    assert not d.silent(now=2.0)
    assert d.silent(now=3.5)
    d.new_route(now=3.5)
    assert not d.silent(now=4.0)
    d.note_sent([2], now=4.0)
    d.note_record({"seq": 2}, 0.0, now=4.1)
    assert not d.silent(now=5.0)
