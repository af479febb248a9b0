from __future__ import annotations

import pytest

from splitinfer.broker.config import DEFAULT_MAX_PAYLOAD, BrokerConfig
from splitinfer.errors import TransportError


def test_defaults() -> None:
    cfg = BrokerConfig()
    assert (cfg.host, cfg.port, cfg.tls) == ("127.0.0.1", 1883, False)
    assert cfg.max_payload == DEFAULT_MAX_PAYLOAD


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker", "broker", 1883, False),
        ("mqtts://broker", "broker", 8883, True),
        ("mqtt://10.0.0.2:1884", "10.0.0.2", 1884, False),
        ("mqtts://[::1]:9000", "::1", 9000, True),
        ("mqtt://broker/", "broker", 1883, False),
    ],
)
def test_urls(url: str, host: str, port: int, tls: bool) -> None:
    cfg = BrokerConfig(url)
    assert (cfg.host, cfg.port, cfg.tls) == (host, port, tls)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("broker:1883", "expected mqtt://"),
        ("http://broker", "scheme 'http' is not supported"),
        ("tcp://broker:1883", "use mqtt://"),
        ("mqtt://", "has no host"),
        ("mqtt://broker:99999", "invalid port"),
        ("mqtt://broker:0", "invalid port"),
        ("mqtt://broker:abc", "invalid port"),
        ("mqtt://broker/topic", "path"),
        ("mqtt://user:pw@broker", "user info"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, match: str) -> None:
    with pytest.raises(TransportError, match=match):
        BrokerConfig(url)


def test_from_url_takes_user_info_out_of_the_url() -> None:
    cfg = BrokerConfig.from_url("mqtt://dev%40x:s3cr%3At@broker:1884")
    assert (cfg.url, cfg.username, cfg.password) == ("mqtt://broker:1884", "dev@x", "s3cr:t")
    assert "s3cr" not in repr(cfg)


def test_password_env_is_read_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = BrokerConfig(username="u", password_env="MY_MQTT_PW")
    monkeypatch.delenv("MY_MQTT_PW", raising=False)
    with pytest.raises(TransportError, match=r"\$MY_MQTT_PW, which is not set"):
        cfg.resolve_password()
    monkeypatch.setenv("MY_MQTT_PW", "pw")
    assert cfg.resolve_password() == "pw"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"password": "x"}, "needs a username"),
        ({"username": "u", "password": "x", "password_env": "X"}, "not both"),
        ({"ca_file": "/ca.pem"}, "use mqtts://"),
        ({"url": "mqtts://b", "cert_file": "/c.pem"}, "both cert_file and key_file"),
        ({"keepalive": 0}, "keepalive"),
        ({"max_payload": 0}, "max_payload"),
        ({"client_id": "a/b"}, "client id"),
    ],
)
def test_invalid_options(options: dict, match: str) -> None:
    with pytest.raises(TransportError, match=match):
        BrokerConfig(**options)


def test_from_env() -> None:
    env = {
        "SPLITINFER_BROKER_URL": "mqtts://gw:8884",
        "SPLITINFER_MQTT_USERNAME": "jetson-01",
        "SPLITINFER_MQTT_PASSWORD": "pw",
        "SPLITINFER_MQTT_CA_FILE": "/ca.pem",
        "SPLITINFER_MQTT_KEEPALIVE": "20",
        "SPLITINFER_MQTT_MAX_PAYLOAD": "1000",
    }
    cfg = BrokerConfig.from_env(env, client_id="jetson-01")
    assert (cfg.host, cfg.port, cfg.tls, cfg.username) == ("gw", 8884, True, "jetson-01")
    assert (cfg.resolve_password(), cfg.ca_file, cfg.keepalive, cfg.max_payload) == ("pw", "/ca.pem", 20, 1000)
    assert cfg.client_id == "jetson-01"


def test_from_process_env_keeps_the_password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITINFER_BROKER_URL", "mqtt://gw")
    monkeypatch.setenv("SPLITINFER_MQTT_USERNAME", "u")
    monkeypatch.setenv("SPLITINFER_MQTT_PASSWORD", "pw")
    cfg = BrokerConfig.from_env()
    assert cfg.password is None and cfg.password_env == "SPLITINFER_MQTT_PASSWORD"
    assert cfg.resolve_password() == "pw"


def test_from_env_defaults_to_loopback() -> None:
    assert BrokerConfig.from_env({}).url == "mqtt://127.0.0.1:1883"


def test_from_env_bad_integer() -> None:
    with pytest.raises(TransportError, match=r"\$SPLITINFER_MQTT_KEEPALIVE must be an integer"):
        BrokerConfig.from_env({"SPLITINFER_MQTT_KEEPALIVE": "soon"})
