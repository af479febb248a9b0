"""A small, safe wrapper around paho-mqtt 2.x: `MqttClient`.

What it adds to paho, and why:

- `connect` blocks until the broker accepted us or the timeout passed, and raises `TransportError` saying
  which: unreachable, no CONNACK, bad credentials, not authorized.
- After that, paho's background thread reconnects with exponential backoff, and `on_connect` re-subscribes
  every live `Subscription` and re-publishes ``online``: a broker restart is invisible to the caller.
- A ``state_topic`` gets a retained last will ``offline`` (set before connecting), a retained ``online`` on
  every connect, and a retained ``offline`` on a clean `close` — unless `set_state` changed it (``failed``:
  then that is what every reconnect says, and `close` leaves it). `MqttClient.announce` does the same for any
  retained message (``info``): published now and again after every reconnect.
- paho callbacks stay thin: a message becomes an immutable `Message` and goes into each matching
  subscription's BOUNDED queue; when a queue is full the oldest (or the newest) message is dropped and counted.
- Payload limits both ways: publishing over ``max_payload`` raises, receiving over it drops and counts.
- Outgoing queues are bounded too (``max_queued_messages``): a QoS 0 publish that would queue beyond it while
  the link is slow is dropped, counted, and `publish` returns False.

The node runtime imports this on Python 3.8 (Jetson): keep it 3.8-compatible.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from splitinfer.broker.config import BrokerConfig
from splitinfer.errors import TransportError

__all__ = ["COUNTERS", "Message", "MqttClient", "Subscription", "Will"]

log = logging.getLogger(__name__)
paho_log = logging.getLogger(__name__ + ".paho")


class _QuietShutdown(logging.Filter):
    # paho 2.2 logs an ERROR when its loop thread runs once more after a clean disconnect: not an error.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected. Socket: None")


paho_log.addFilter(_QuietShutdown())

Payload = Union[bytes, bytearray, memoryview, str]

COUNTERS = (
    "published",  # publishes handed to paho
    "unsent",  # QoS 0 publishes dropped: not connected, or the outgoing queue was full
    "received",  # messages received within the payload limit
    "dropped",  # received messages dropped because a subscription queue was full
    "oversize_in",  # received messages over max_payload, dropped unread
    "oversize_out",  # publishes refused because they were over max_payload
    "connects",  # successful CONNACKs
    "reconnects",  # successful CONNACKs after the first
    "disconnects",  # connections lost (not counting close())
)

_DROP_POLICIES = ("oldest", "newest")

# CONNACK refusals (MQTT 3.1.1 codes, which paho reports as MQTT 5 reason codes) -> what to tell the user.
_REFUSALS = {
    132: "the broker does not support MQTT 3.1.1",
    133: "the broker rejected the client id",
    134: "bad user name or password: check username and the password (or the variable named by password_env)",
    135: "not authorized: wrong username or password, unknown user, or anonymous access is off",
    136: "the broker is unavailable",
}


@dataclass(frozen=True)
class Message:
    """One received message, as handed to consumers."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_monotonic: float  # time.monotonic() when paho handed it over: use for latencies
    received_wall: float  # time.time() at the same moment: use for logs and cross-machine stamps


@dataclass(frozen=True)
class Will:
    """A last will: what the broker publishes for us when our connection dies without a clean disconnect."""

    topic: str
    payload: Payload
    qos: int = 1
    retain: bool = True


class Subscription:
    """Messages matching one topic filter, in a bounded thread-safe queue.

    Made by `MqttClient.subscribe`. ``drop="oldest"`` keeps the freshest messages (real-time data such as
    feature frames); ``drop="newest"`` keeps the backlog and refuses new messages while full.
    """

    def __init__(self, client: MqttClient, topic_filter: str, qos: int, maxsize: int, drop: str) -> None:
        self._client = client
        self.topic_filter = topic_filter
        self.qos = qos
        self.maxsize = maxsize
        self.drop = drop
        self.dropped = 0
        self.closed = False
        self._queue: Deque[Message] = deque()
        self._cond = threading.Condition()

    def __repr__(self) -> str:
        return f"Subscription({self.topic_filter!r}, qos={self.qos}, queued={len(self)}, dropped={self.dropped})"

    def __len__(self) -> int:
        return len(self._queue)

    def get(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, waiting up to ``timeout`` seconds (None: forever); None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self.closed, timeout):
                return None
            return self._queue.popleft() if self._queue else None

    def drain(self) -> List[Message]:
        """Every queued message, without waiting."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self) -> None:
        """Unsubscribe; a consumer blocked in `get` wakes up with None."""
        self._client.unsubscribe(self)

    def _put(self, message: Message) -> bool:
        """Called on paho's thread. Returns False when a message had to be dropped."""
        with self._cond:
            if self.closed:
                return True
            dropped = len(self._queue) >= self.maxsize
            if dropped:
                self.dropped += 1
                if self.drop == "newest":
                    return False
                self._queue.popleft()
            self._queue.append(message)
            self._cond.notify()
            return not dropped

    def _close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class MqttClient:
    """One MQTT connection with reconnect, last will, bounded queues and counters.

    with MqttClient(config, state_topic=topics.state("jetson-01")) as mqtt:   # connects
        sub = mqtt.subscribe(topics.assign("jetson-01"), qos=1)
        mqtt.publish(topics.info("jetson-01"), json.dumps(info), qos=1, retain=True)
        msg = sub.get(timeout=1.0)
    """

    def __init__(
        self,
        config: BrokerConfig,
        *,
        state_topic: Optional[str] = None,
        will: Optional[Will] = None,
        max_queued_messages: int = 100,
        reconnect_min_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
    ) -> None:
        if state_topic is not None and will is not None:
            raise TransportError("give either state_topic (which sets the will) or will, not both")
        if max_queued_messages < 1:
            raise TransportError(f"max_queued_messages must be at least 1, got {max_queued_messages}")
        self.config = config
        self.client_id = config.client_id or f"splitinfer-{uuid.uuid4().hex[:12]}"
        self.state_topic = state_topic
        self._state = b"online"  # what the state topic says while connected (set_state)
        self.max_queued_messages = max_queued_messages
        self._lock = threading.Lock()
        self._counters: Dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._subs: Tuple[Subscription, ...] = ()
        self._connected = threading.Event()
        self._connack = threading.Event()
        self._refusal: Optional[Any] = None
        self._suback_cond = threading.Condition()
        self._subacks: Dict[int, Optional[List[Any]]] = {}
        self._announced: Dict[str, Tuple[bytes, int]] = {}
        self._closing = False
        self._started = False
        if state_topic is not None:
            will = Will(state_topic, b"offline", qos=1, retain=True)
        self._paho = self._make_paho(will, reconnect_min_delay, reconnect_max_delay)

    def _make_paho(self, will: Optional[Will], min_delay: float, max_delay: float) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv311, clean_session=True
        )
        client.enable_logger(paho_log)
        client.max_queued_messages_set(self.max_queued_messages)
        client.reconnect_delay_set(min_delay, max_delay)  # type: ignore[arg-type]  # floats work (time.sleep)
        if self.config.tls:
            self._set_tls(client)
        if will is not None:
            client.will_set(will.topic, _as_bytes(will.payload), will.qos, will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _set_tls(self, client: paho.Client) -> None:
        cfg = self.config
        try:
            client.tls_set(
                ca_certs=cfg.ca_file,
                certfile=cfg.cert_file,
                keyfile=cfg.key_file,
                cert_reqs=ssl.CERT_NONE if cfg.tls_insecure else ssl.CERT_REQUIRED,
            )
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot set up TLS for {cfg.url}: {exc}") from exc
        client.tls_insecure_set(cfg.tls_insecure)

    # ---- connection ------------------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> None:
        """Connect, retrying refused or failed attempts until ``timeout`` seconds have passed.

        Raises `TransportError` if the broker stayed unreachable, sent no CONNACK, or refused us (credentials
        are not retried). Afterwards reconnects happen by themselves in the background.
        """
        if self._closing:
            raise TransportError("this MqttClient was closed; make a new one")
        if self._connected.is_set():
            return
        cfg = self.config
        if cfg.username:
            self._paho.username_pw_set(cfg.username, cfg.resolve_password())
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            reason = self._attempt(deadline)
            if reason is None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(f"cannot reach the MQTT broker at {cfg.url} within {timeout:g} s: {reason}")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)

    def _attempt(self, deadline: float) -> Optional[str]:
        """One connection attempt. None when connected, else why not (for a retry); raises if retrying is futile."""
        cfg = self.config
        self._set_connect_timeout(max(0.05, min(5.0, deadline - time.monotonic())))
        self._connack.clear()
        self._refusal = None
        try:
            self._paho.connect(cfg.host, cfg.port, cfg.keepalive)
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake with {cfg.url} failed: {exc}") from exc
        except ConnectionRefusedError:
            return "connection refused (is the broker running, and is the port right?)"
        except socket.gaierror as exc:
            return f"cannot resolve host {cfg.host!r} ({exc.strerror})"
        except (socket.timeout, TimeoutError):
            return "no answer (host down, or a firewall drops the packets?)"
        except OSError as exc:
            return exc.strerror or str(exc)
        self._started = True
        self._paho.loop_start()
        got = self._connack.wait(max(0.0, deadline - time.monotonic()))
        if self._connected.is_set():
            return None
        self._stop_loop()
        if got and self._refusal is not None:
            code = self._refusal
            hint = _REFUSALS.get(code.value, str(code))
            raise TransportError(f"the MQTT broker at {cfg.url} refused the connection: {hint}", refused=True)
        raise TransportError(
            f"connected to {cfg.url} but got no MQTT CONNACK in time: is it an MQTT broker"
            + (" with TLS on this port?" if cfg.tls else ", and not a TLS port (which needs mqtts://)?")
        )

    def _set_connect_timeout(self, seconds: float) -> None:
        try:
            self._paho.connect_timeout = seconds
        except RuntimeError:  # paho refuses while a failed attempt left it "connecting"; the socket is gone
            self._paho._connect_timeout = seconds

    def _stop_loop(self) -> None:
        self._paho.disconnect()
        self._paho.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Wait until connected (e.g. after a broker restart); False if ``timeout`` passed first."""
        return self._connected.wait(timeout)

    def set_state(self, state: bytes, timeout: Optional[float] = None) -> bool:
        """Say ``state`` (retained) on the state topic now, on every reconnect, and at `close` instead of
        ``offline`` (e.g. ``failed``: the reason a node stopped outlives it). The last will stays ``offline``."""
        if self.state_topic is None:
            raise TransportError("set_state needs a client made with a state_topic")
        self._state = bytes(state)
        if not self._connected.is_set():
            return False
        return self.publish(self.state_topic, self._state, qos=1, retain=True, timeout=timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` for the state topic (if any), disconnect cleanly, stop the thread. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._connected.is_set() and self.state_topic is not None and self._state == b"online":
            info = self._paho.publish(self.state_topic, b"offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        if self._started:
            self._stop_loop()
        self._connected.clear()
        for sub in self._subs:
            sub._close()
        self._subs = ()

    def __enter__(self) -> MqttClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- subscribe / publish ---------------------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, qos: int = 0, *, maxsize: int = 100, drop: str = "oldest", timeout: float = 5.0
    ) -> Subscription:
        """Subscribe and return the `Subscription` that will queue matching messages.

        If connected, waits up to ``timeout`` for the broker's SUBACK (so messages published after this
        returns are delivered) and raises `TransportError` if the broker refused. If not connected, the
        subscription is made on the next (re)connect. It survives reconnects until closed.
        """
        if drop not in _DROP_POLICIES:
            raise TransportError(f"drop must be 'oldest' or 'newest', got {drop!r}")
        if maxsize < 1:
            raise TransportError(f"maxsize must be at least 1, got {maxsize}")
        if qos not in (0, 1, 2):
            raise TransportError(f"qos must be 0, 1 or 2, got {qos!r}")
        _check_filter(topic_filter)
        sub = Subscription(self, topic_filter, qos, maxsize, drop)
        with self._lock:
            self._subs = (*self._subs, sub)
        if self._connected.is_set():
            self._subscribe_now([(topic_filter, qos)], timeout)
        return sub

    def _subscribe_now(self, filters: Sequence[Tuple[str, int]], timeout: float) -> None:
        with self._suback_cond:
            rc, mid = self._paho.subscribe(list(filters))
            if rc != paho.MQTT_ERR_SUCCESS or mid is None:
                return  # not connected after all: on_connect will subscribe
            self._subacks[mid] = None
            done = self._suback_cond.wait_for(lambda: self._subacks.get(mid) is not None, timeout)
            codes = self._subacks.pop(mid, None)
        if not done or codes is None:
            raise TransportError(f"no SUBACK for {filters[0][0]!r} within {timeout:g} s from {self.config.url}")
        refused = [f for (f, _), code in zip(filters, codes) if code.is_failure]
        if refused:
            raise TransportError(f"the broker refused the subscription to {', '.join(refused)} (ACL?)")

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription; the broker subscription goes when no other `Subscription` uses the filter."""
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
            still_used = any(s.topic_filter == sub.topic_filter for s in self._subs)
        sub._close()
        if not still_used and self._connected.is_set():
            self._paho.unsubscribe(sub.topic_filter)

    def publish(
        self, topic: str, payload: Payload, qos: int = 0, retain: bool = False, *, timeout: Optional[float] = None
    ) -> bool:
        """Publish; False if the message had to be dropped (QoS 0 while disconnected, outgoing queue full).

        QoS 1/2 messages are queued while disconnected (up to ``max_queued_messages``) and sent on reconnect.
        With ``timeout`` (QoS 1/2 only), wait until the broker acknowledged the message and raise
        `TransportError` if it did not within that time (the message stays queued).
        Raises `TransportError` for a payload over ``config.max_payload`` or an invalid topic.
        """
        data = _as_bytes(payload)
        if len(data) > self.config.max_payload:
            self._count("oversize_out")
            raise TransportError(
                f"payload of {len(data)} bytes for {topic!r} is over the limit of {self.config.max_payload} bytes"
            )
        if qos == 0 and self._outgoing_backlog() >= self.max_queued_messages:
            self._count("unsent")
            return False
        try:
            info = self._paho.publish(topic, data, qos, retain)
        except ValueError as exc:
            raise TransportError(f"cannot publish to {topic!r}: {exc}") from exc
        queued = info.rc == paho.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == paho.MQTT_ERR_NO_CONN)
        self._count("published" if queued else "unsent")
        if queued and qos > 0 and timeout is not None:
            self._wait_acknowledged(info, topic, timeout)
        return queued

    def _wait_acknowledged(self, info: paho.MQTTMessageInfo, topic: str, timeout: float) -> None:
        if info.rc == paho.MQTT_ERR_SUCCESS:
            info.wait_for_publish(timeout)
        if info.rc != paho.MQTT_ERR_SUCCESS or not info.is_published():
            raise TransportError(f"the broker did not acknowledge the publish to {topic!r} within {timeout:g} s")

    def announce(self, topic: str, payload: Payload, qos: int = 1) -> None:
        """Publish a retained message now and again after every reconnect (e.g. ``devices/<id>/info``), so it
        is back even when the broker restarted without persistence. An empty payload clears it and stops."""
        data = _as_bytes(payload)
        with self._lock:
            if data:
                self._announced[topic] = (data, qos)
            else:
                self._announced.pop(topic, None)
        self.publish(topic, data, qos=qos, retain=True)

    def _outgoing_backlog(self) -> int:
        # paho bounds queued QoS>0 messages (max_queued_messages) but not QoS 0 packets waiting for the socket;
        # its _out_packet deque is the only place that says how many there are (present in paho 1.x and 2.x).
        return len(getattr(self._paho, "_out_packet", ()))

    def counters(self) -> Dict[str, int]:
        """A snapshot of the `COUNTERS`, for metrics."""
        with self._lock:
            return dict(self._counters)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    # ---- paho callbacks (paho's thread: keep them thin) ------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refusal = reason
            self._connack.set()
            return
        self._connected.set()
        with self._lock:
            self._counters["connects"] += 1
            if self._counters["connects"] > 1:
                self._counters["reconnects"] += 1
            filters = {s.topic_filter: s.qos for s in self._subs}
            announced = dict(self._announced)
        for topic_filter, qos in filters.items():
            client.subscribe(topic_filter, qos)
        if self.state_topic is not None:
            client.publish(self.state_topic, self._state, qos=1, retain=True)
        for topic, (data, qos) in announced.items():
            client.publish(topic, data, qos=qos, retain=True)
        self._connack.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._closing:
            self._count("disconnects")
            log.warning("MQTT connection to %s lost (%s); reconnecting", self.config.url, reason)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, codes: Any, properties: Any) -> None:
        with self._suback_cond:
            if mid in self._subacks:
                self._subacks[mid] = list(codes)
                self._suback_cond.notify_all()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if len(msg.payload) > self.config.max_payload:
            self._count("oversize_in")
            return
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.monotonic(), time.time())
        dropped = 0
        for sub in self._subs:
            if paho.topic_matches_sub(sub.topic_filter, message.topic) and not sub._put(message):
                dropped += 1
        with self._lock:
            self._counters["received"] += 1
            self._counters["dropped"] += dropped


def _as_bytes(payload: Payload) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TransportError(f"payload must be bytes or str, got {type(payload).__name__}")


def _check_filter(topic_filter: str) -> None:
    if not isinstance(topic_filter, str) or not topic_filter:
        raise TransportError(f"topic filter must be a non-empty string, got {topic_filter!r}")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("#" in level and (level != "#" or i != len(levels) - 1)) or ("+" in level and level != "+"):
            raise TransportError(f"invalid topic filter {topic_filter!r}: '+' and '#' must fill a whole level")
