"""Per-device MQTT credentials from one fleet secret.

The broker's ACL (``splitctl broker config``) lets every device touch only its own topics, which needs one MQTT
user per device. Rather than a password file to distribute, each user's password is derived from the secret in
the environment variable ``broker.password_env`` (set on the operator's machine): the secret is stretched once per
fleet with PBKDF2-HMAC-SHA256 (``KDF_ITERATIONS`` rounds, salted with the fleet name), and each user's password is
``base64url(HMAC-SHA256(that key, "<fleet>/<user>"))``. A device's password says nothing about another's or about
the secret. The secret must be at least ``MIN_SECRET`` characters with some variety (``openssl rand -base64 24``
makes a good one). Deploy gives each container its own; the coordinator and ``splitctl`` log in as the operator
user (``broker.username``, default ``coordinator``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from typing import Mapping, Optional, Tuple

from splitinfer.errors import FleetConfigError

from .schema import Fleet

__all__ = ["DEFAULT_OPERATOR", "check_secret", "derive_password", "fleet_secret", "operator_credentials"]

DEFAULT_OPERATOR = "coordinator"
KDF_ITERATIONS = 200_000
MIN_SECRET = 16


@functools.lru_cache(maxsize=8)
def _fleet_key(secret: str, fleet: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), f"splitinfer/{fleet}".encode(), KDF_ITERATIONS)


def derive_password(secret: str, fleet: str, user: str) -> str:
    """The MQTT password of ``user`` in ``fleet`` (see the module)."""
    digest = hmac.new(_fleet_key(secret, fleet), f"{fleet}/{user}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_secret(secret: str, name: str) -> str:
    """FleetConfigError unless ``secret`` is long and varied enough to guard a fleet."""
    if len(secret) < MIN_SECRET or len(set(secret)) < 8:
        raise FleetConfigError(f"the fleet secret in {name} is too weak ({len(secret)} characters, "
                               f"{len(set(secret))} different): use at least {MIN_SECRET} random characters, e.g. "
                               "`export {0}=$(openssl rand -base64 24)`".format(name), field="broker.password_env")
    return secret


def fleet_secret(fleet: Fleet, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """The fleet secret, or None when the broker takes anonymous clients (no ``password_env``)."""
    name = fleet.broker.password_env
    if not name:
        return None
    value = environ.get(name)
    if not value:
        raise FleetConfigError(f"environment variable {name} is not set; export it (the fleet's MQTT secret)",
                               field="broker.password_env")
    return check_secret(value, name)


def operator_credentials(fleet: Fleet, environ: Mapping[str, str] = os.environ) -> Tuple[Optional[str], Optional[str]]:
    """(username, password) for the coordinator and splitctl; (username or None, None) without a secret."""
    secret = fleet_secret(fleet, environ)
    user = fleet.broker.username or (DEFAULT_OPERATOR if secret else None)
    return user, (derive_password(secret, fleet.fleet, user) if secret and user else None)
