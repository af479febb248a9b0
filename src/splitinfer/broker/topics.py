"""The MQTT topic tree of one fleet (see docs/topic-tree.md).

Every topic lives under ``<prefix>/<fleet>`` (``splitinfer/traffic-a`` by default)::

    devices/<id>/info           retained JSON, published by the node on connect
    devices/<id>/state          retained text: "online", or "offline" from the last will
    devices/<id>/assign         retained JSON, published by the coordinator
    devices/<id>/metrics        JSON every few seconds
    devices/<id>/probe          padding at QoS 1, from a head timing its link (nobody subscribes)
    features/<tail>/<head>      binary feature frames, head -> tail
    detections/<head>           JSON per frame, tail -> whoever listens

Pure logic: no paho here. Ids are validated so a topic can never gain or lose a level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

from splitinfer.errors import TransportError

__all__ = ["DEVICE_KINDS", "RESERVED_IDS", "ParsedTopic", "Topics", "validate_id"]

DEVICE_KINDS = ("info", "state", "assign", "metrics", "probe")
"""The per-device topics, ``devices/<id>/<kind>``."""

MAX_ID_LENGTH = 64
RESERVED_IDS = ("coordinator", "operator", "splitctl")
"""Ids no device may have: the coordinator's own topics and client id, and the operator users."""
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_id(value: str, what: str = "device id") -> str:
    """Return ``value`` if it is usable as one topic level, else raise `TransportError`.

    Allowed: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit; at most 64 characters.
    That rules out ``/``, ``+``, ``#``, ``$`` and ``%`` (which Mosquitto ACL patterns treat specially).
    """
    if not isinstance(value, str):
        raise TransportError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise TransportError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise TransportError(f"{what} {value[:20]!r}… is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    if not _ID_RE.fullmatch(value):
        raise TransportError(
            f"{what} {value!r} is not valid: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


class ParsedTopic(NamedTuple):
    """What `Topics.parse` found in a topic.

    ``kind`` is one of ``info``, ``state``, ``assign``, ``metrics``, ``features``, ``detections``.
    ``device`` is the device the topic is about: the device for ``devices/...``, the head for ``features``
    and ``detections``. ``tail`` is set for ``features`` only.
    """

    kind: str
    device: str
    tail: Optional[str] = None


@dataclass(frozen=True)
class Topics:
    """Builds and parses the topics of one fleet.

    >>> t = Topics("traffic-a")
    >>> t.features("tail-01", "jetson-01")
    'splitinfer/traffic-a/features/tail-01/jetson-01'
    >>> t.parse("splitinfer/traffic-a/devices/jetson-01/state")
    ParsedTopic(kind='state', device='jetson-01', tail=None)
    """

    fleet: str
    prefix: str = "splitinfer"

    def __post_init__(self) -> None:
        validate_id(self.fleet, "fleet name")
        if not isinstance(self.prefix, str) or not self.prefix:
            raise TransportError("topic prefix must not be empty")
        for level in self.prefix.split("/"):
            validate_id(level, f"topic prefix level in {self.prefix!r}")

    @property
    def root(self) -> str:
        """``<prefix>/<fleet>``: every topic of the fleet starts with it."""
        return f"{self.prefix}/{self.fleet}"

    # ---- concrete topics -------------------------------------------------------------------------------

    def device(self, device_id: str, kind: str) -> str:
        """``devices/<id>/<kind>`` for one of `DEVICE_KINDS`."""
        if kind not in DEVICE_KINDS:
            raise TransportError(f"device topic kind must be one of {', '.join(DEVICE_KINDS)}; got {kind!r}")
        return f"{self.root}/devices/{validate_id(device_id)}/{kind}"

    def info(self, device_id: str) -> str:
        return self.device(device_id, "info")

    def state(self, device_id: str) -> str:
        return self.device(device_id, "state")

    def assign(self, device_id: str) -> str:
        return self.device(device_id, "assign")

    def metrics(self, device_id: str) -> str:
        return self.device(device_id, "metrics")

    def probe(self, device_id: str) -> str:
        """Where a head publishes link probes (QoS 1, acknowledged by the broker, delivered to nobody)."""
        return self.device(device_id, "probe")

    def features(self, tail: str, head: str) -> str:
        """Where ``head`` publishes feature frames for ``tail``."""
        return f"{self.root}/features/{validate_id(tail, 'tail id')}/{validate_id(head, 'head id')}"

    def detections(self, head: str) -> str:
        """Where the tail serving ``head`` publishes its detections."""
        return f"{self.root}/detections/{validate_id(head, 'head id')}"

    def policy(self) -> str:
        """``coordinator/policy`` (retained JSON): the fleet's model, default cut and codec, per-device overrides.

        Written by the coordinator at start and by ``splitctl deploy`` to change cuts without recreating
        containers; the coordinator follows it.
        """
        return f"{self.root}/coordinator/policy"

    # ---- subscriptions ---------------------------------------------------------------------------------

    def all(self) -> str:
        """Everything of the fleet (operator, ``splitctl status --watch``)."""
        return f"{self.root}/#"

    def all_devices(self, kind: str) -> str:
        """``devices/+/<kind>``: e.g. every device's retained state."""
        if kind not in DEVICE_KINDS:
            raise TransportError(f"device topic kind must be one of {', '.join(DEVICE_KINDS)}; got {kind!r}")
        return f"{self.root}/devices/+/{kind}"

    def features_for(self, tail: str) -> str:
        """``features/<tail>/+``: what a tail subscribes to."""
        return f"{self.root}/features/{validate_id(tail, 'tail id')}/+"

    def all_detections(self) -> str:
        """``detections/+``."""
        return f"{self.root}/detections/+"

    # ---- parsing ---------------------------------------------------------------------------------------

    def parse(self, topic: str) -> ParsedTopic:
        """Split a topic of this fleet into its kind and ids; raise `TransportError` if it is not one."""
        head = self.root + "/"
        if not isinstance(topic, str) or not topic.startswith(head):
            raise TransportError(f"topic {topic!r} is not under {self.root!r}")
        levels = tuple(topic[len(head) :].split("/"))
        try:
            return _parse_levels(levels)
        except TransportError as exc:
            raise TransportError(f"malformed topic {topic!r}: {exc}") from None


def _parse_levels(levels: Tuple[str, ...]) -> ParsedTopic:
    if len(levels) == 3 and levels[0] == "devices":
        if levels[2] not in DEVICE_KINDS:
            raise TransportError(f"unknown device topic {levels[2]!r}")
        return ParsedTopic(levels[2], validate_id(levels[1]))
    if len(levels) == 3 and levels[0] == "features":
        return ParsedTopic("features", validate_id(levels[2], "head id"), validate_id(levels[1], "tail id"))
    if levels == ("coordinator", "policy"):
        return ParsedTopic("policy", "coordinator")
    if len(levels) == 2 and levels[0] == "detections":
        return ParsedTopic("detections", validate_id(levels[1], "head id"))
    raise TransportError(
        "expected devices/<id>/{info,state,assign,metrics,probe}, features/<tail>/<head>, detections/<head> "
        "or coordinator/policy"
    )
