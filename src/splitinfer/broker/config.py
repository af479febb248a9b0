"""How to reach the MQTT broker: `BrokerConfig`.

    BrokerConfig.from_url("mqtts://user@broker.example:8883", password_env="SPLITINFER_MQTT_PASSWORD",
                          ca_file="/etc/splitinfer/ca.pem")
    BrokerConfig.from_env()     # SPLITINFER_BROKER_URL, SPLITINFER_MQTT_USERNAME, SPLITINFER_MQTT_PASSWORD, …

``mqtt://`` is plain TCP (default port 1883), ``mqtts://`` is TLS (default port 8883). The password is either
given directly or, better, named by ``password_env`` and read from the environment only when connecting.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

from splitinfer.errors import TransportError

__all__ = ["DEFAULT_MAX_PAYLOAD", "DEFAULT_URL", "BrokerConfig"]

DEFAULT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
"""16 MiB: several multi-megabyte feature frames of a batch fit; the broker should allow at least this."""
MQTT_MAX_PAYLOAD = 268_435_455 - 1024  # MQTT's remaining-length limit, minus room for the topic and header

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

ENV_URL = "SPLITINFER_BROKER_URL"
ENV_USERNAME = "SPLITINFER_MQTT_USERNAME"
ENV_PASSWORD = "SPLITINFER_MQTT_PASSWORD"
ENV_CA_FILE = "SPLITINFER_MQTT_CA_FILE"
ENV_CERT_FILE = "SPLITINFER_MQTT_CERT_FILE"
ENV_KEY_FILE = "SPLITINFER_MQTT_KEY_FILE"
ENV_TLS_INSECURE = "SPLITINFER_MQTT_TLS_INSECURE"
ENV_CLIENT_ID = "SPLITINFER_MQTT_CLIENT_ID"
ENV_KEEPALIVE = "SPLITINFER_MQTT_KEEPALIVE"
ENV_MAX_PAYLOAD = "SPLITINFER_MQTT_MAX_PAYLOAD"


@dataclass(frozen=True)
class BrokerConfig:
    """Connection settings for one MQTT broker. Validated on construction; `TransportError` says what is wrong."""

    url: str = DEFAULT_URL
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    password_env: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    tls_insecure: bool = False
    keepalive: int = 30
    client_id: str = ""
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def __post_init__(self) -> None:
        _split_url(self.url)
        if self.password is not None and self.password_env is not None:
            raise TransportError("broker config: give either password or password_env, not both")
        if (self.password is not None or self.password_env is not None) and not self.username:
            raise TransportError("broker config: a password needs a username")
        if bool(self.cert_file) != bool(self.key_file):
            raise TransportError("broker config: a TLS client certificate needs both cert_file and key_file")
        if not self.tls and (self.ca_file or self.cert_file or self.tls_insecure):
            raise TransportError(f"broker config: TLS options given but {self.url!r} is plain mqtt://; use mqtts://")
        if not 5 <= self.keepalive <= 65535:
            raise TransportError(f"broker config: keepalive must be 5..65535 seconds, got {self.keepalive}")
        if not 1 <= self.max_payload <= MQTT_MAX_PAYLOAD:
            raise TransportError(
                f"broker config: max_payload must be 1..{MQTT_MAX_PAYLOAD} bytes, got {self.max_payload}"
            )
        if len(self.client_id.encode("utf-8")) > 65535 or any(c in self.client_id for c in "/+#"):
            raise TransportError(f"broker config: client id {self.client_id!r} must not contain '/', '+' or '#'")

    # ---- derived ---------------------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return _split_url(self.url)[0] == "mqtts"

    @property
    def host(self) -> str:
        return _split_url(self.url)[1]

    @property
    def port(self) -> int:
        return _split_url(self.url)[2]

    def resolve_password(self) -> Optional[str]:
        """The password to send: ``password``, or the value of the ``password_env`` variable (read now)."""
        if self.password_env is None:
            return self.password
        value = os.environ.get(self.password_env)
        if value is None:
            raise TransportError(
                f"broker config: the MQTT password is taken from ${self.password_env}, which is not set"
            )
        return value

    def with_client_id(self, client_id: str) -> BrokerConfig:
        return dataclasses.replace(self, client_id=client_id)

    # ---- constructors ----------------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BrokerConfig:
        """Build from a URL; ``mqtt://user:pass@host:port`` user info fills username and password
        unless given in ``options`` (a password in a URL ends up in logs and shell history: prefer password_env).
        The URL stored is the one without user info."""
        parts = _urlsplit(url)
        clean = f"{parts.scheme}://{_host_port(parts)}"
        if parts.username is not None:
            options.setdefault("username", unquote(parts.username))
        if parts.password is not None and "password_env" not in options:
            options.setdefault("password", unquote(parts.password))
        return cls(url=clean, **options)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, *, url: Optional[str] = None,
                 **options: Any) -> BrokerConfig:
        """Build from ``SPLITINFER_BROKER_URL`` (default ``mqtt://127.0.0.1:1883``), ``SPLITINFER_MQTT_USERNAME``,
        ``SPLITINFER_MQTT_PASSWORD`` (read at connect time), ``SPLITINFER_MQTT_CA_FILE``, ``…_CERT_FILE``,
        ``…_KEY_FILE``, ``…_TLS_INSECURE``, ``…_CLIENT_ID``, ``…_KEEPALIVE``, ``…_MAX_PAYLOAD``.
        Keyword ``options`` win over the environment."""
        env = os.environ if environ is None else environ
        found: dict = {}
        for key, name in (
            ("username", ENV_USERNAME),
            ("ca_file", ENV_CA_FILE),
            ("cert_file", ENV_CERT_FILE),
            ("key_file", ENV_KEY_FILE),
            ("client_id", ENV_CLIENT_ID),
        ):
            if env.get(name):
                found[key] = env[name]
        for key, name in (("keepalive", ENV_KEEPALIVE), ("max_payload", ENV_MAX_PAYLOAD)):
            if env.get(name):
                found[key] = _env_int(name, env[name])
        if env.get(ENV_TLS_INSECURE):
            found["tls_insecure"] = env[ENV_TLS_INSECURE].strip().lower() in ("1", "true", "yes", "on")
        if env.get(ENV_PASSWORD) is not None:
            if environ is None:
                found["password_env"] = ENV_PASSWORD  # resolved at connect, kept out of the config object
            else:
                found["password"] = env[ENV_PASSWORD]
        found.update(options)
        return cls.from_url(url or env.get(ENV_URL) or DEFAULT_URL, **found)


def _env_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TransportError(f"${name} must be an integer, got {value!r}") from None


def _urlsplit(url: str) -> Any:
    if not isinstance(url, str) or "://" not in url:
        raise TransportError(f"broker URL {url!r} is not valid: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise TransportError(
            f"broker URL {url!r}: scheme {parts.scheme!r} is not supported; use mqtt:// (TCP) or mqtts:// (TLS)"
        )
    if not parts.hostname:
        raise TransportError(f"broker URL {url!r} has no host: expected {parts.scheme}://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise TransportError(f"broker URL {url!r} must not have a path, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise TransportError(f"broker URL {url!r} has an invalid port: expected 1..65535") from None
    if port == 0:
        raise TransportError(f"broker URL {url!r} has an invalid port: expected 1..65535")
    return parts


def _host_port(parts: Any) -> str:
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port or _DEFAULT_PORTS[parts.scheme]}"


def _split_url(url: str) -> Tuple[str, str, int]:
    parts = _urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise TransportError(
            f"broker URL for {parts.hostname!r} carries user info; use BrokerConfig.from_url(), or username/password"
        )
    return parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme]
