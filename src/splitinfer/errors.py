"""The one error tree of splitinfer.

    SplitInferError                 root: catch this to catch everything we raise on purpose (never raised bare)
    ├── CodecError                  a feature payload is malformed, truncated, too large or from another version
    ├── ModelError                  a model cannot be loaded, or a cut does not fit it
    ├── SourceError                 a frame source (camera, file, stream) cannot be opened or read
    ├── TransportError              the MQTT broker is unreachable, refused us, or a payload is over its limit
    │   └── ProtocolError           a message on the topic tree is malformed (a node skips it and goes on)
    ├── FleetConfigError            fleet.yaml (or a flag that overrides it) is invalid
    ├── DeployError                 a Docker engine refused or failed an operation
    ├── ProcessError                a process of a one-machine system (run --local, bench, tests) failed
    └── BenchError                  a benchmark cannot run as asked (option, tool, privileges) or gave no result
        └── NetnsError              network namespaces or tc shaping could not be set up

Third-party errors (``zstandard.ZstdError``, paho return codes, docker ``APIError``) are translated at the
boundary with ``raise ... from exc``; useful context stays on the error as attributes (device id, field path,
process name and exit status, log file).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "BenchError",
    "CodecError",
    "DeployError",
    "FleetConfigError",
    "ModelError",
    "NetnsError",
    "ProcessError",
    "ProtocolError",
    "SourceError",
    "SplitInferError",
    "TransportError",
]


class SplitInferError(Exception):
    """Root of every error splitinfer raises on purpose. Never raised itself: every raise names a branch."""


class CodecError(SplitInferError):
    """A feature payload could not be encoded or decoded."""


class ModelError(SplitInferError):
    """A model could not be loaded or split as asked."""


class SourceError(SplitInferError):
    """A frame source cannot be opened or read. ``source`` is the spec as given, when known."""

    def __init__(self, message: str, *, source: Optional[str] = None) -> None:
        super().__init__(message)
        self.source = source


class TransportError(SplitInferError):
    """The MQTT transport failed: connection, authentication, or payload limits.

    ``refused`` is True when the broker answered and turned the login down (credentials, client id): retrying
    will not help, and it must not read as "unreachable".
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ProtocolError(TransportError):
    """A message on the topic tree is malformed."""


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


class ProcessError(SplitInferError):
    """A child process of a one-machine system failed: exited early, timed out, or never became ready.

    ``name`` is the process's role (``tail``, ``head``, ``coordinator``…), ``returncode`` its exit status when it
    exited, ``log`` the file its output went to.
    """

    def __init__(self, message: str, *, name: str = "", returncode: Optional[int] = None,
                 log: Optional[str] = None) -> None:
        super().__init__(message)
        self.name = name
        self.returncode = returncode
        self.log = log


class BenchError(SplitInferError):
    """A benchmark cannot run as asked (a malformed option, a missing tool, no privileges) or produced no result."""


class NetnsError(BenchError):
    """Creating or shaping the network namespaces failed."""
