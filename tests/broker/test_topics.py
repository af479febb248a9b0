from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitinfer.broker.topics import ParsedTopic, Topics, validate_id
from splitinfer.errors import TransportError

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
T = Topics("traffic-a")


def test_builds_the_design_topic_tree() -> None:
    root = "splitinfer/traffic-a"
    assert T.info("jetson-01") == f"{root}/devices/jetson-01/info"
    assert T.state("jetson-01") == f"{root}/devices/jetson-01/state"
    assert T.assign("jetson-01") == f"{root}/devices/jetson-01/assign"
    assert T.metrics("jetson-01") == f"{root}/devices/jetson-01/metrics"
    assert T.features("tail-01", "jetson-01") == f"{root}/features/tail-01/jetson-01"
    assert T.detections("jetson-01") == f"{root}/detections/jetson-01"


def test_wildcard_subscriptions() -> None:
    assert T.all() == "splitinfer/traffic-a/#"
    assert T.all_devices("state") == "splitinfer/traffic-a/devices/+/state"
    assert T.features_for("tail-01") == "splitinfer/traffic-a/features/tail-01/+"
    assert T.all_detections() == "splitinfer/traffic-a/detections/+"


def test_prefix_is_configurable_and_may_have_levels() -> None:
    assert Topics("f", prefix="site/7").state("d") == "site/7/f/devices/d/state"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("splitinfer/traffic-a/devices/j1/info", ParsedTopic("info", "j1")),
        ("splitinfer/traffic-a/devices/j1/assign", ParsedTopic("assign", "j1")),
        ("splitinfer/traffic-a/features/t1/j1", ParsedTopic("features", "j1", "t1")),
        ("splitinfer/traffic-a/detections/j1", ParsedTopic("detections", "j1")),
    ],
)
def test_parse(topic: str, expected: ParsedTopic) -> None:
    assert T.parse(topic) == expected
    kind, device, tail = T.parse(topic)  # unpacks like a tuple
    assert (kind, device, tail) == (expected.kind, expected.device, expected.tail)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "splitinfer/traffic-b/devices/j1/info",  # another fleet
        "splitinfer/traffic-a",
        "splitinfer/traffic-a/",
        "splitinfer/traffic-a/devices/j1",
        "splitinfer/traffic-a/devices/j1/info/extra",
        "splitinfer/traffic-a/devices/j1/config",
        "splitinfer/traffic-a/devices//info",
        "splitinfer/traffic-a/devices/+/info",
        "splitinfer/traffic-a/features/t1",
        "splitinfer/traffic-a/features/t1/#",
        "splitinfer/traffic-a/detections/j1/x",
        "splitinfer/traffic-a/frames/j1",
    ],
)
def test_parse_rejects_malformed_topics(topic: str) -> None:
    with pytest.raises(TransportError, match="topic"):
        T.parse(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "+", "$SYS", "-lead", ".hidden", "a b", "é", "%u", "x" * 65])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(TransportError):
        validate_id(bad)
    with pytest.raises(TransportError):
        T.state(bad)
    with pytest.raises(TransportError):
        Topics(bad)


@pytest.mark.parametrize("bad", ["", "/a", "a/", "a//b", "a/+", "#"])
def test_invalid_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(TransportError, match="prefix"):
        Topics("f", prefix=bad)


def test_unknown_device_kind() -> None:
    with pytest.raises(TransportError, match="info, state, assign, metrics"):
        T.device("j1", "config")


@given(fleet=ids, head=ids, tail=ids, kind=st.sampled_from(["info", "state", "assign", "metrics"]))
def test_build_then_parse_round_trips(fleet: str, head: str, tail: str, kind: str) -> None:
    t = Topics(fleet)
    assert t.parse(t.device(head, kind)) == (kind, head, None)
    assert t.parse(t.features(tail, head)) == ("features", head, tail)
    assert t.parse(t.detections(head)) == ("detections", head, None)


@given(st.text(max_size=80))
def test_parse_never_raises_anything_but_transport_error(topic: str) -> None:
    with contextlib.suppress(TransportError):
        T.parse("splitinfer/traffic-a/" + topic)
