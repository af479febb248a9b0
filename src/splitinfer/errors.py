"""The one error tree of splitinfer.

    SplitInferError                 root: catch this to catch everything we raise on purpose
    ├── CodecError                  a feature payload is malformed, truncated, too large or from another version
    ├── ModelError                  a model cannot be loaded, or a cut does not fit it
    ├── TransportError              the MQTT broker is unreachable, refused us, or a payload is over its limit
    ├── FleetConfigError            fleet.yaml (or a flag that overrides it) is invalid
    └── DeployError                 a Docker engine refused or failed an operation

Third-party errors (``zstandard.ZstdError``, paho return codes, docker ``APIError``) are translated at the
boundary with ``raise ... from exc``; useful context stays on the error as attributes.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "CodecError",
    "DeployError",
    "FleetConfigError",
    "ModelError",
    "SplitInferError",
    "TransportError",
]


class SplitInferError(Exception):
    """Root of every error splitinfer raises on purpose."""


class CodecError(SplitInferError):
    """A feature payload could not be encoded or decoded."""


class ModelError(SplitInferError):
    """A model could not be loaded or split as asked."""


class TransportError(SplitInferError):
    """The MQTT transport failed: connection, authentication, or payload limits."""


class FleetConfigError(SplitInferError):
    """fleet.yaml, or an option that overrides it, is invalid.

    ``path`` is the file and ``field`` the dotted field path (``devices[2].role``) when known.
    """

    def __init__(self, message: str, *, path: Optional[str] = None, field: Optional[str] = None) -> None:
        prefix = ""
        if path:
            prefix += f"{path}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)
        self.path = path
        self.field = field


class DeployError(SplitInferError):
    """A Docker engine operation failed for a device.

    ``device`` is the fleet device id, ``logs`` the container's last log lines when known.
    """

    def __init__(self, message: str, *, device: Optional[str] = None, logs: str = "") -> None:
        super().__init__(f"{device}: {message}" if device else message)
        self.device = device
        self.logs = logs
