"""Per-device MQTT credentials from one fleet secret.

The broker's ACL (``splitctl broker config``) lets every device touch only its own topics, which needs one MQTT
user per device. Rather than a password file to distribute, each user's password is derived from the secret in
the environment variable ``broker.password_env`` (set on the operator's machine):
``base64url(HMAC-SHA256(secret, "<fleet>/<user>"))``. Deploy gives each container its own; the coordinator and
``splitctl`` log in as the operator user (``broker.username``, default ``coordinator``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Mapping, Optional, Tuple

from splitinfer.errors import FleetConfigError

from .schema import Fleet

__all__ = ["DEFAULT_OPERATOR", "derive_password", "fleet_secret", "operator_credentials"]

DEFAULT_OPERATOR = "coordinator"


def derive_password(secret: str, fleet: str, user: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{fleet}/{user}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def fleet_secret(fleet: Fleet, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """The fleet secret, or None when the broker takes anonymous clients (no ``password_env``)."""
    name = fleet.broker.password_env
    if not name:
        return None
    value = environ.get(name)
    if not value:
        raise FleetConfigError(f"environment variable {name} is not set; export it (the fleet's MQTT secret)",
                               field="broker.password_env")
    return value


def operator_credentials(fleet: Fleet, environ: Mapping[str, str] = os.environ) -> Tuple[Optional[str], Optional[str]]:
    """(username, password) for the coordinator and splitctl; (username or None, None) without a secret."""
    secret = fleet_secret(fleet, environ)
    user = fleet.broker.username or (DEFAULT_OPERATOR if secret else None)
    return user, (derive_password(secret, fleet.fleet, user) if secret and user else None)
