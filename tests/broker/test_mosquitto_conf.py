"""The production Mosquitto files: rendering, and the ACL enforced by a real Mosquitto started with them."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

from splitinfer.broker.client import Message, MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker, find_mosquitto, free_port, run_mosquitto
from splitinfer.broker.mosquitto_conf import hash_password, render_conf, render_mosquitto_files, render_passwd
from splitinfer.broker.topics import Topics
from splitinfer.errors import FleetConfigError, TransportError

DEVICES = [("jetson-01", "head"), ("jetson-02", "head"), ("tail-01", "tail"), ("tail-02", "tail")]
PASSWORDS = {"jetson-01": "pw-j1", "jetson-02": "pw-j2", "tail-01": "pw-t1", "tail-02": "pw-t2", "coordinator": "pw-c"}
T = Topics("traffic-a")


# ---- rendering (no broker) ----------------------------------------------------------------------------


def test_conf_has_auth_on_and_limits() -> None:
    files = render_mosquitto_files("traffic-a", DEVICES, PASSWORDS, hasher="python")
    conf = files.conf
    for line in [
        "per_listener_settings true",
        "allow_anonymous false",
        "password_file /mosquitto/config/passwd",
        "password_file /mosquitto/config/passwd-operators",
        "acl_file /mosquitto/config/acl",
        "use_username_as_clientid true",
        "persistence true",
        "autosave_on_changes true",
        "listener 1883",
        "listener 1884",
        f"message_size_limit {16 * 1024 * 1024}",
    ]:
        assert line in conf.splitlines()
    assert "listener 8883" not in conf
    assert [line.split(":")[0] for line in files.passwd.splitlines()] == [d for d, _ in DEVICES]
    assert [line.split(":")[0] for line in files.passwd_operators.splitlines()] == ["coordinator"]


def test_passwords_never_reach_a_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mosquitto_passwd hashes a prepared file (-U): no password is an argument any local user's ps could see."""
    calls = tmp_path / "calls"
    fake = tmp_path / "mosquitto_passwd"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexec {shutil.which('mosquitto_passwd') or 'true'} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    files = render_mosquitto_files("traffic-a", DEVICES, PASSWORDS, hasher="mosquitto_passwd")
    argv = calls.read_text()
    assert all(password not in argv for password in PASSWORDS.values()) and "-U" in argv
    if shutil.which("mosquitto_passwd"):
        assert files.passwd.count("$7$") == len(DEVICES)


def test_conf_with_tls_listener() -> None:
    conf = render_conf("f", port=None, cafile="/c/ca.pem", certfile="/c/s.pem", keyfile="/c/s.key")
    lines = conf.splitlines()
    assert "listener 8883" in lines and "listener 1883" not in lines
    assert {"cafile /c/ca.pem", "certfile /c/s.pem", "keyfile /c/s.key", "require_certificate false"} <= set(lines)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"certfile": "/s.pem"}, "certificate file and a key file"),
        ({"port": None}, "needs a listener"),
        ({"require_certificate": True, "certfile": "/s", "keyfile": "/k"}, "CA file"),
    ],
)
def test_conf_refuses_incomplete_tls(kwargs: dict, match: str) -> None:
    with pytest.raises(FleetConfigError, match=match):
        render_conf("f", **kwargs)


def test_acl_grants_by_role() -> None:
    acl = render_mosquitto_files("traffic-a", DEVICES, PASSWORDS, hasher="python").acl
    lines = [line for line in acl.splitlines() if line and not line.startswith("#")]
    root = "splitinfer/traffic-a"
    assert f"pattern write {root}/devices/%u/state" in lines
    assert f"pattern read {root}/devices/%u/assign" in lines
    head = lines[lines.index("user jetson-01") + 1 : lines.index("user jetson-02")]
    assert head == [f"topic write {root}/features/+/jetson-01", f"topic readwrite {root}/detections/jetson-01"]
    tail = lines[lines.index("user tail-01") + 1 : lines.index("user tail-02")]
    assert tail == [f"topic read {root}/features/tail-01/+", f"topic write {root}/detections/+"]
    assert lines[-3:] == [
        f"topic read {root}/#",
        f"topic write {root}/devices/+/assign",
        f"topic write {root}/coordinator/policy",
    ]


@pytest.mark.parametrize(
    ("devices", "passwords", "match"),
    [
        ([("jetson-01", "hed")], PASSWORDS, r"devices\[0\]\.role: expected 'head' or 'tail', got 'hed'"),
        ([("bad/id", "head")], PASSWORDS, r"devices\[0\]\.id"),
        ([("jetson-01", "head"), ("jetson-01", "tail")], PASSWORDS, "used twice: jetson-01"),
        ([("coordinator", "head")], PASSWORDS, "used twice: coordinator"),
        ([("jetson-09", "head")], PASSWORDS, "no MQTT password given for user 'jetson-09'"),
    ],
)
def test_bad_inputs(devices: list, passwords: Dict[str, str], match: str) -> None:
    with pytest.raises(FleetConfigError, match=match):
        render_mosquitto_files("traffic-a", devices, passwords, hasher="python")


def test_hash_password_is_mosquitto_pbkdf2_sha512() -> None:
    salt = b"0123456789ab"
    line = hash_password("secret", salt=salt)
    _, seven, iterations, salt64, digest64 = line.split("$")
    assert (seven, iterations, base64.b64decode(salt64)) == ("7", "101", salt)
    assert base64.b64decode(digest64) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101)
    assert hash_password("secret") != hash_password("secret")  # fresh salt each time


def test_passwd_python_and_tool_write_the_same_format() -> None:
    python = render_passwd({"a": "x"}, hasher="python")
    assert python.startswith("a:$7$101$") and python.endswith("\n")
    if find_mosquitto() is not None:
        tool = render_passwd({"a": "x"}, hasher="mosquitto_passwd")
        assert tool.startswith("a:$7$101$") and len(tool) == len(python)


# ---- against a real Mosquitto -------------------------------------------------------------------------


def _start(tmp: Path, hasher: str) -> LocalBroker:
    port, operator_port = free_port(), free_port()
    files = render_mosquitto_files(
        "traffic-a",
        DEVICES,
        PASSWORDS,
        port=port,
        operator_port=operator_port,
        bind_address="127.0.0.1",
        config_dir=str(tmp),
        data_dir=None,
        run_as_user="root" if os.geteuid() == 0 else None,
        hasher=hasher,
    )
    paths = files.write(str(tmp))
    assert oct(paths["passwd"].stat().st_mode & 0o777) == "0o600"
    assert oct(paths["passwd-operators"].stat().st_mode & 0o777) == "0o600"
    broker = run_mosquitto(str(paths["mosquitto.conf"]), port)
    broker.operator_url = f"mqtt://127.0.0.1:{operator_port}"  # type: ignore[attr-defined]
    return broker


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = _start(tmp_path_factory.mktemp("acl"), hasher="python")  # our own $7$ hashes, checked by Mosquitto
    yield broker
    broker.stop()


@pytest.fixture
def login(acl_broker: LocalBroker) -> Iterator[Callable[..., MqttClient]]:
    made: List[MqttClient] = []

    def make(user: str, *, client_id: str = "", listener: str = "") -> MqttClient:
        listener = listener or ("operators" if user == "coordinator" else "devices")
        url = acl_broker.operator_url if listener == "operators" else acl_broker.url  # type: ignore[attr-defined]
        client = MqttClient(BrokerConfig(url, username=user, password=PASSWORDS[user], client_id=client_id or user))
        made.append(client)
        client.connect(timeout=5)
        return client

    yield make
    for client in made:
        client.close(timeout=0.5)


def _collect_until(sub_messages: Callable[[float], object], sentinel: str, timeout: float = 5.0) -> List[str]:
    """Topics received until (and including) ``sentinel``."""
    seen: List[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub_messages(0.1)
        if isinstance(msg, Message):
            seen.append(msg.topic)
            if msg.topic == sentinel:
                return seen
    raise AssertionError(f"sentinel {sentinel} never arrived; saw {seen}")


@pytest.mark.mosquitto
def test_head_publishes_its_own_topics_and_nothing_else(login: Callable[..., MqttClient]) -> None:
    operator = login("coordinator")
    everything = operator.subscribe(T.all(), qos=1, maxsize=1000)
    head = login("jetson-01")
    allowed = [T.info("jetson-01"), T.state("jetson-01"), T.metrics("jetson-01"), T.features("tail-01", "jetson-01"),
               T.detections("jetson-01")]  # its own detections: local mode
    denied = [
        T.info("jetson-02"),  # another device's topic
        T.assign("jetson-01"),  # only the coordinator assigns
        T.features("tail-01", "jetson-02"),  # posing as another head
        T.detections("jetson-02"),  # another head's detections
        "splitinfer/other-fleet/devices/jetson-01/info",
    ]
    for topic in denied + allowed:  # denied first: Mosquitto drops them silently, order is kept per client
        head.publish(topic, b"x", qos=1)
    seen = _collect_until(everything.get, allowed[-1])
    assert seen == allowed


@pytest.mark.mosquitto
def test_tail_reads_its_features_and_publishes_detections(login: Callable[..., MqttClient]) -> None:
    operator = login("coordinator")
    everything = operator.subscribe(T.all(), qos=1, maxsize=1000)
    tail = login("tail-01")
    mine = tail.subscribe(T.features_for("tail-01"), qos=1)
    others = tail.subscribe(T.features_for("tail-02"), qos=1)  # accepted or refused, but never delivered
    head = login("jetson-02")
    head.publish(T.features("tail-02", "jetson-02"), b"not for tail-01", qos=1)
    head.publish(T.features("tail-01", "jetson-02"), b"frame", qos=1)
    msg = mine.get(timeout=5)
    assert msg is not None and msg.payload == b"frame"
    tail.publish(T.features("tail-02", "jetson-02"), b"x", qos=1)  # tails do not publish features
    tail.publish(T.detections("jetson-02"), b"[]", qos=1)
    seen = _collect_until(everything.get, T.detections("jetson-02"))
    assert seen == [T.features("tail-02", "jetson-02"), T.features("tail-01", "jetson-02"), T.detections("jetson-02")]
    assert others.get(timeout=0.2) is None


@pytest.mark.mosquitto
def test_coordinator_assigns_and_only_that_device_reads_it(login: Callable[..., MqttClient]) -> None:
    operator = login("coordinator")
    # acknowledged before the head subscribes: it must get them as retained messages, not live
    operator.publish(T.assign("jetson-01"), b'{"cut": "b"}', qos=1, retain=True, timeout=5)
    operator.publish(T.assign("jetson-02"), b'{"cut": "c"}', qos=1, retain=True, timeout=5)
    head = login("jetson-01")
    own = head.subscribe(T.assign("jetson-01"), qos=1)
    msg = own.get(timeout=5)
    assert msg is not None and msg.payload == b'{"cut": "b"}' and msg.retain
    try:
        other = head.subscribe(T.all_devices("assign"), qos=1)
    except TransportError:
        return  # refused outright: fine
    seen = [m.topic for m in iter(lambda: other.get(timeout=0.3), None)]
    assert T.assign("jetson-02") not in seen


@pytest.mark.mosquitto
def test_anonymous_is_refused(acl_broker: LocalBroker) -> None:
    client = MqttClient(BrokerConfig(acl_broker.url))
    with pytest.raises(TransportError, match="refused the connection: not authorized"):
        client.connect(timeout=3)
    client.close()


@pytest.mark.mosquitto
def test_wrong_password_is_refused(acl_broker: LocalBroker) -> None:
    client = MqttClient(BrokerConfig(acl_broker.url, username="jetson-01", password="wrong"))
    started = time.monotonic()
    with pytest.raises(TransportError, match="refused the connection"):
        client.connect(timeout=3)
    assert time.monotonic() - started < 1.0  # credentials are not retried
    client.close()


@pytest.mark.mosquitto
def test_mosquitto_passwd_hashes_work_too(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    broker = _start(tmp_path, hasher="mosquitto_passwd")
    try:
        client = MqttClient(BrokerConfig(broker.url, username="tail-02", password=PASSWORDS["tail-02"]))
        client.connect(timeout=3)
        client.close()
    finally:
        broker.stop()


@pytest.mark.mosquitto
def test_no_device_takes_over_another_session(login: Callable[..., MqttClient]) -> None:
    victim = login("jetson-01")
    coordinator = login("coordinator", client_id="traffic-a-coordinator")
    for stolen in ("jetson-01", "traffic-a-coordinator", "tail-01"):
        login("jetson-02", client_id=stolen).close(timeout=0.5)  # the broker names it "jetson-02" whatever it asks
    time.sleep(0.5)
    assert victim.counters()["disconnects"] == 0 and coordinator.counters()["disconnects"] == 0


@pytest.mark.mosquitto
def test_each_listener_takes_only_its_own_users(login: Callable[..., MqttClient]) -> None:
    with pytest.raises(TransportError, match="refused"):
        login("jetson-01", listener="operators")
    with pytest.raises(TransportError, match="refused"):
        login("coordinator", listener="devices")
    login("coordinator", client_id="op-1")
    login("coordinator", client_id="op-2")  # operators keep several sessions at once
