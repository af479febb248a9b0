"""`splitctl status`: the compact table fits 80 columns, --wide has the rest, --json has nulls for what is unknown,
and nothing a device publishes — any JSON type in any field, or no JSON at all — makes it crash."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from splitinfer.broker.client import MqttClient
from splitinfer.broker.config import BrokerConfig
from splitinfer.broker.local import LocalBroker
from splitinfer.broker.topics import Topics
from splitinfer.cli import status as status_cli
from splitinfer.cli.app import app
from splitinfer.deploy.live import LiveFleet
from splitinfer.fleet import Fleet

runner = CliRunner()
NOWHERE = "unix:///nonexistent/d.sock"  # every engine unreachable at once: this is about the MQTT side

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ("role", "fps", "latency_ms", "bytes_per_frame", "dropped", "cut", "route", "heads", "mode", "device",
          "failure", "reason", "predicted_ms", "e2e_ms_by_head", "frames", "frames_captured")
payloads = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={k: json_values for k in FIELDS}).map(lambda d: json.dumps(d).encode()),
)


class _Sub:
    def drain(self) -> List[Any]:
        return []


class _Client:
    def subscribe(self, *args: Any, **kwargs: Any) -> _Sub:
        return _Sub()


class _Msg:
    def __init__(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.topic, self.payload, self.retain, self.received_wall = topic, payload, retain, time.time()


def _fleet(url: str, devices: List[Dict[str, Any]]) -> Fleet:
    return Fleet.model_validate({"fleet": "st", "broker": {"url": url}, "devices": devices})


def _devices(*ids: str) -> List[Dict[str, Any]]:
    return [{"id": i, "role": "tail" if i.startswith("tail") else "head", "docker": NOWHERE,
             **({} if i.startswith("tail") else {"source": "0"})} for i in ids]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(info=payloads, state=payloads, assign=payloads, metrics=payloads, tail_metrics=payloads)
def test_any_payload_from_a_device_is_shown_or_ignored_never_a_crash(info: bytes, state: bytes, assign: bytes,
                                                                     metrics: bytes, tail_metrics: bytes) -> None:
    live = LiveFleet(_fleet("mqtt://127.0.0.1:1", _devices("cam-1", "tail-1")), _Client())  # type: ignore[arg-type]
    topics = Topics("st")
    for kind, payload in (("info", info), ("state", state), ("assign", assign), ("metrics", metrics)):
        live._absorb(kind, _Msg(topics.device("cam-1", kind), payload))
    live._absorb("metrics", _Msg(topics.metrics("tail-1"), tail_metrics))
    live.assign["cam-1"] = dict(live.assign.get("cam-1", {}), route="tail-1")
    rows = []
    for device in ("cam-1", "tail-1"):
        row = {"id": device, "role": "head", "container": "c", "state": "running", "image": "i", "hash_match": True,
               "started_at": None, "restart_count": 0, "exit_code": 0, "desired_cut": "b"}
        found = live.device_status(device)
        row["mqtt"] = None if found is None else dict(found.__dict__)
        row["health"] = status_cli.health(row, broker=True, now=time.time())
        rows.append(row)
    json.dumps(rows, allow_nan=False)  # what --json prints: no NaN or infinity either
    from rich.console import Console

    console = Console(width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(status_cli._view("st", rows, wide=False))
    console.print(status_cli._view("st", rows, wide=True))


def test_fps_keeps_its_precision_below_one_frame_per_second() -> None:
    assert [status_cli._fps(v) for v in (None, 0, 0.3, 0.04, 1.25, 14.25, 250.4)] == [
        "—", "0", "0.3", "0.04", "1.2", "14.2", "250"]


def test_health_is_the_worst_of_what_the_engine_and_the_node_say() -> None:
    now = time.time()
    online = {"state": "online", "last_seen": now - 1, "drop_ratio": 0.0, "failure": None}

    def word(state: str = "running", broker: bool = True, **row: Any) -> str:
        return status_cli.health({"state": state, "hash_match": True, "restart_count": 0, "exit_code": 0,
                                  "mqtt": online, **row}, broker=broker, now=now)

    assert word() == "ok"
    assert word("unreachable") == "unreachable" and word("absent") == "absent"
    assert word("exited", exit_code=1) == "failed" and word("exited") == "stopped"
    assert word(mqtt={**online, "state": "failed"}) == "failed"
    assert word(mqtt={**online, "failure": "CUDA out of memory"}) == "failed"
    assert word(mqtt={**online, "state": "offline"}) == "offline" and word(mqtt=None) == "offline"
    assert word(mqtt={**online, "last_seen": now - 60}) == "silent"
    assert word(mqtt={**online, "drop_ratio": 0.5}) == "dropping"
    assert word(hash_match=False) == "stale" and word(restart_count=3) == "restarted"
    assert word(broker=False, mqtt=None) == "running"


# ---- through the Typer app, against a real Mosquitto ------------------------------------------------------


GARBAGE: Dict[str, Dict[str, bytes]] = {
    "cam-list": {"metrics": b"[1, 2, 3]", "info": b'"a string"', "assign": b"null", "state": b"online"},
    "cam-types": {"metrics": json.dumps({"fps": "fast", "latency_ms": [1], "bytes_per_frame": -5, "dropped": 1.5,
                                         "cut": {"a": 1}, "role": 7, "mode": [], "frames_captured": "x"}).encode(),
                  "info": json.dumps({"device": 3, "failure": {"x": 1}, "role": None}).encode(),
                  "assign": json.dumps({"route": 5, "heads": "tail", "predicted_ms": "soon", "reason": [],
                                        "cut": True}).encode(),
                  "state": b"[bold red]pwned[/]"},
    "cam-nested": {"metrics": b'{"latency_ms": {"head_ms": {"p50": {"deep": []}}}, "fps": Infinity, "dropped": NaN}',
                   "info": b"\xff\xfe not json", "assign": json.dumps({"route": "tail-ok"}).encode(),
                   "state": b"\xff\xfe"},
    "tail-garbage": {"metrics": json.dumps({"role": "tail", "e2e_ms_by_head": {"cam-nested": "x"},
                                            "latency_ms": {"e2e_ms": "y"}}).encode(),
                     "info": b"{}", "assign": json.dumps({"heads": [1, None, "cam-good"]}).encode(),
                     "state": b"online"},
}
GOOD_HEAD = {"role": "head", "fps": 0.3, "latency_ms": {"head_ms": {"p50": 41.5}}, "bytes_per_frame": 163000,
             "dropped": 0, "frames_captured": 12, "cut": 10, "mode": "split"}
GOOD_TAIL = {"role": "tail", "fps": 14.2, "latency_ms": {"e2e_ms": {"p50": 88.0}}, "dropped": 0, "frames": 30,
             "e2e_ms_by_head": {"cam-good": {"p50": 71.0}}}


@pytest.fixture
def live_fleet(mosquitto_broker: LocalBroker, tmp_path: Path) -> Iterator[Path]:
    """fleet.yaml for devices that publish garbage (retained info/state/assign, metrics every 0.3 s) and two
    that publish what nodes publish."""
    ids = [*GARBAGE, "cam-good", "tail-ok"]
    path = tmp_path / "fleet.yaml"
    path.write_text(json.dumps({"fleet": "st", "broker": {"url": mosquitto_broker.url}, "devices": _devices(*ids)}))
    topics = Topics("st")
    client = MqttClient(BrokerConfig.from_url(mosquitto_broker.url, client_id="st-devices"))
    client.connect(timeout=5)
    retained = {**{d: {k: v for k, v in g.items() if k != "metrics"} for d, g in GARBAGE.items()},
                "cam-good": {"state": b"online", "info": json.dumps({"role": "head", "device": "cuda:0",
                                                                      "failure": ""}).encode(),
                             "assign": json.dumps({"cut": 10, "route": "tail-ok", "predicted_ms": 64.0,
                                                   "reason": "fixed cut", "mode": "split"}).encode()},
                "tail-ok": {"state": b"online", "info": json.dumps({"role": "tail"}).encode(),
                            "assign": json.dumps({"heads": ["cam-good"]}).encode()}}
    for device, kinds in retained.items():
        for kind, payload in kinds.items():
            client.publish(topics.device(device, kind), payload, qos=1, retain=True, timeout=5)
    metrics = {**{d: g["metrics"] for d, g in GARBAGE.items()}, "cam-good": json.dumps(GOOD_HEAD).encode(),
               "tail-ok": json.dumps(GOOD_TAIL).encode()}
    stop = threading.Event()

    def publish_metrics() -> None:
        while not stop.wait(0.3):
            for device, payload in metrics.items():
                client.publish(topics.metrics(device), payload, qos=0)

    thread = threading.Thread(target=publish_metrics, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    for device, kinds in retained.items():
        for kind in kinds:
            client.publish(topics.device(device, kind), b"", qos=1, retain=True, timeout=5)
    client.close()


@pytest.mark.mosquitto
@pytest.mark.slow
def test_status_survives_garbage_and_fits_80_columns(live_fleet: Path) -> None:
    result = runner.invoke(app, ["status", "-f", str(live_fleet)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    header = next(line for line in lines if line.startswith("device"))
    assert header.split() == ["device", "role", "state", "cut", "fps", "p50", "ms", "drops", "seen", "health"]
    good = next(line for line in lines if line.startswith("cam-good"))
    assert good.split()[3:7] == ["10", "0.3", "42", "0"] and good.split()[-1] == "unreachable"
    assert good.split()[7] in ("0s", "1s", "2s", "3s")  # metrics arrive every 0.3 s
    tail = next(line for line in lines if line.startswith("tail-ok"))
    assert tail.split()[3:6] == ["—", "14.2", "88"]
    for device in GARBAGE:
        assert device in result.stdout

    wide = runner.invoke(app, ["status", "--wide", "-f", str(live_fleet)], env={"COLUMNS": "80"})
    assert wide.exit_code == 0, wide.output
    good = next(line for line in wide.stdout.splitlines() if line.startswith("cam-good"))
    for value in ("10", "split", "tail-ok", "cuda:0", "64 / 71", "163,000"):
        assert value in good.split() or value in good, (value, good)
    assert "cam-good: fixed cut" in wide.stdout
    assert "[bold red]pwned[/]" in wide.stdout  # shown as the text it is, never as markup

    as_json = runner.invoke(app, ["status", "--json", "-f", str(live_fleet)])
    assert as_json.exit_code == 0, as_json.output
    rows = {r["id"]: r for r in json.loads(as_json.stdout)["devices"]}
    assert rows["tail-ok"]["mqtt"]["cut"] is None and rows["tail-ok"]["mqtt"]["route"] == "cam-good"
    assert rows["cam-good"]["mqtt"]["fps"] == 0.3 and rows["cam-good"]["mqtt"]["device"] == "cuda:0"
    assert rows["cam-good"]["mqtt"]["failure"] is None and rows["cam-good"]["health"] == "unreachable"
    types = rows["cam-types"]["mqtt"]
    assert {k: types[k] for k in ("fps", "latency_ms", "bytes_per_frame", "dropped", "cut", "route", "mode",
                                  "device", "failure", "predicted_ms")} == dict.fromkeys(
        ("fps", "latency_ms", "bytes_per_frame", "dropped", "cut", "route", "mode", "device", "failure",
         "predicted_ms"))
    assert rows["cam-list"]["mqtt"]["state"] == "online" and rows["cam-list"]["mqtt"]["fps"] is None
    assert rows["tail-garbage"]["mqtt"]["route"] == "cam-good"  # the one string among the heads
    assert "—" not in as_json.stdout
