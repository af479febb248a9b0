"""A thin wrapper over the Docker SDK: calls in, plain data out, every docker error a DeployError.

This layer knows one engine and one container at a time; it has no idea what a fleet is. The fleet logic
(plan, config-hash diff, rolling order, rollback) lives in :mod:`.plan` and :mod:`.deployer`.

``docker`` is imported when an engine is connected, not when this module is imported.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from splitinfer.errors import DeployError

from .spec import ContainerSpec

__all__ = ["ContainerState", "Engine", "EngineInfo", "iter_lines"]

Since = Union[datetime, int, float, None]


@dataclass(frozen=True)
class EngineInfo:
    endpoint: str
    arch: str
    os: str
    version: str
    api_version: str
    runtimes: Tuple[str, ...]
    default_runtime: str
    nvidia_runtime: bool
    gpus: Optional[int]
    """GPUs the engine advertises as generic resources; ``None`` when the Engine API cannot tell."""
    free_disk: Optional[int]
    """Bytes free under the engine's data root; ``None`` for remote engines (the API does not say)."""
    cpus: int
    memory: int


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    status: str
    """created, running, restarting, paused, exited, dead"""
    running: bool
    exit_code: int
    restart_count: int
    image: str
    image_id: str
    labels: Dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    error: str = ""


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Re-assemble text lines from streamed log chunks, which split lines (and UTF-8 characters) anywhere."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line.rstrip("\r")
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending.rstrip("\r")


class Engine:
    """One device's Docker engine. Create with :meth:`connect`; close with :meth:`close` or ``with``."""

    def __init__(self, client: Any, *, endpoint: str, device: Optional[str] = None) -> None:
        self._client = client
        self.endpoint = endpoint
        self.device = device

    # -- connection ------------------------------------------------------------------------------------------

    @classmethod
    def connect(
        cls, endpoint: str, *, device: Optional[str] = None, tls_dir: Optional[str] = None, timeout: float = 10.0
    ) -> Engine:
        """Connect and check the engine answers within ``timeout`` seconds; DeployError if it does not."""
        try:
            import docker
        except ImportError as exc:  # the node images leave it out: only the operator's machine needs it
            raise DeployError("the Docker SDK is not installed here: pip install 'docker>=7'", device=device) from exc

        kwargs: Dict[str, Any] = {"base_url": endpoint, "timeout": timeout}
        if endpoint.startswith("ssh://"):
            # The system ssh client honours ~/.ssh/config and agents; paramiko (docker[ssh]) is the fallback.
            kwargs["use_ssh_client"] = shutil.which("ssh") is not None
        if tls_dir:
            kwargs["tls"] = _tls_config(Path(tls_dir).expanduser(), device)
        try:
            client = docker.DockerClient(**kwargs)
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError/Timeout, paramiko, OSError
            raise DeployError(f"cannot reach the Docker engine at {endpoint}: {_reason(exc)}", device=device) from exc
        return cls(client, endpoint=endpoint, device=device)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        import docker.errors
        import requests.exceptions

        try:
            yield
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            raise DeployError(f"{what}: {_reason(exc)}", device=self.device) from exc

    # -- engine ----------------------------------------------------------------------------------------------

    def info(self) -> EngineInfo:
        with self._translate("reading engine info"):
            info = self._client.info()
            version = self._client.version()
        runtimes = tuple(sorted(info.get("Runtimes") or {}))
        return EngineInfo(
            endpoint=self.endpoint,
            arch=str(info.get("Architecture") or version.get("Arch") or "?"),
            os=str(info.get("OperatingSystem") or "?"),
            version=str(version.get("Version") or "?"),
            api_version=str(version.get("ApiVersion") or "?"),
            runtimes=runtimes,
            default_runtime=str(info.get("DefaultRuntime") or ""),
            nvidia_runtime="nvidia" in runtimes,
            gpus=_generic_gpus(info.get("GenericResources")),
            free_disk=self._free_disk(str(info.get("DockerRootDir") or "")),
            cpus=int(info.get("NCPU") or 0),
            memory=int(info.get("MemTotal") or 0),
        )

    def _free_disk(self, root: str) -> Optional[int]:
        if not self.endpoint.startswith("unix://") or not root:
            return None
        try:
            return shutil.disk_usage(root).free
        except OSError:
            return None

    # -- images ----------------------------------------------------------------------------------------------

    def image_id(self, name: str) -> Optional[str]:
        import docker.errors

        with self._translate(f"looking up image {name}"):
            try:
                return str(self._client.images.get(name).id)
            except docker.errors.ImageNotFound:
                return None

    def ensure_image(self, name: str, *, build: Optional[Tuple[Path, str]] = None) -> Tuple[str, str]:
        """Make ``name`` present: already there, else pull, else build ``(context, dockerfile)``.

        Returns ``(image id, how)`` with ``how`` in ``present``, ``pulled``, ``built``.
        """
        found = self.image_id(name)
        if found:
            return found, "present"
        try:
            return self._pull(name), "pulled"
        except DeployError as pull_error:
            if build is None:
                raise DeployError(
                    f"image {name} is not on the engine and cannot be pulled ({pull_error}); push it to a registry "
                    "the device can reach, or give images.<role>.build (docs/deploying.md)",
                    device=self.device,
                ) from pull_error
        return self._build(name, *build), "built"

    def import_image(self, rootfs: bytes, name: str, *, changes: Sequence[str] = ()) -> str:
        """``docker import``: an image named ``name`` from the tar of a root filesystem; ``changes`` are
        Dockerfile instructions (ENV, CMD, …). Returns the image id."""
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(name)
        with self._translate(f"importing {name}"):
            self._client.api.import_image_from_data(rootfs, repository=repository, tag=tag or "latest",
                                                    changes=list(changes) or None)
        found = self.image_id(name)
        if found is None:
            raise DeployError(f"importing {name}: the engine did not keep it", device=self.device)
        return found

    def _pull(self, name: str) -> str:
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(name)
        with self._translate(f"pulling {name}"):
            return str(self._client.images.pull(repository, tag=tag or "latest").id)

    def _build(self, name: str, context: Path, dockerfile: str) -> str:
        import docker.errors

        try:
            image, _ = self._client.images.build(path=str(context), dockerfile=dockerfile, tag=name, rm=True)
        except docker.errors.BuildError as exc:
            log = "\n".join(str(item.get("stream", "")).rstrip() for item in exc.build_log if "stream" in item)
            raise DeployError(
                f"building {name} from {context}/{dockerfile}: {exc.msg}",
                device=self.device,
                logs="\n".join(log.splitlines()[-20:]),
            ) from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise DeployError(f"building {name}: {_reason(exc)}", device=self.device) from exc
        return str(image.id)

    # -- containers ------------------------------------------------------------------------------------------

    def container(self, name_or_id: str) -> Optional[ContainerState]:
        """The container's state, or ``None`` when there is no such container."""
        import docker.errors

        with self._translate(f"inspecting container {name_or_id}"):
            try:
                attrs = self._client.api.inspect_container(name_or_id)
            except docker.errors.NotFound:
                return None
        return _state(attrs)

    def containers(self, labels: Dict[str, str]) -> List[ContainerState]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with self._translate("listing containers"):
            found = self._client.api.containers(all=True, filters=filters)
            return [_state(self._client.api.inspect_container(item["Id"])) for item in found]

    def create(self, spec: ContainerSpec, *, name: Optional[str] = None, restart_policy: Optional[str] = None) -> str:
        """Create (not start) a container from ``spec``; returns its id. ``restart_policy`` overrides the spec's."""
        from docker.types import DeviceRequest

        requests = [DeviceRequest(**request) for request in spec.device_requests()] or None
        with self._translate(f"creating container {name or spec.name}"):
            container = self._client.containers.create(
                spec.image,
                list(spec.command),
                name=name or spec.name,
                environment=dict(spec.env),
                labels=dict(spec.labels),
                volumes=list(spec.volumes),
                devices=list(spec.devices) or None,
                runtime=spec.runtime,
                device_requests=requests,
                network_mode=spec.network_mode,
                restart_policy={"Name": restart_policy or spec.restart_policy},
                init=spec.init,
            )
        return str(container.id)

    def set_restart_policy(self, container: str, policy: str) -> None:
        with self._translate(f"updating the restart policy of {container}"):
            self._client.api.update_container(container, restart_policy={"Name": policy})

    def start(self, container: str) -> None:
        with self._translate(f"starting container {container}"):
            self._client.api.start(container)

    def stop(self, container: str, *, timeout: int = 10) -> None:
        with self._translate(f"stopping container {container}"):
            self._client.api.stop(container, timeout=timeout)

    def rename(self, container: str, name: str) -> None:
        with self._translate(f"renaming container {container} to {name}"):
            self._client.api.rename(container, name)

    def remove(self, container: str) -> None:
        import docker.errors

        with self._translate(f"removing container {container}"), contextlib.suppress(docker.errors.NotFound):
            self._client.api.remove_container(container, force=True)

    def logs(
        self, container: str, *, tail: Optional[int] = None, since: Since = None, follow: bool = False
    ) -> Iterator[str]:
        """The container's output (stdout and stderr) as lines; with ``follow``, until the container stops."""
        with self._translate(f"reading logs of {container}"):
            chunks = self._client.api.logs(
                container,
                stdout=True,
                stderr=True,
                stream=True,
                follow=follow,
                tail="all" if tail is None else tail,
                since=since,
            )
        try:
            with self._translate(f"reading logs of {container}"):
                yield from iter_lines(chunks)
        finally:
            with contextlib.suppress(Exception):
                chunks.close()

    def last_lines(self, container: str, count: int = 20) -> str:
        """The last ``count`` log lines, or a note saying why there are none (never raises)."""
        try:
            return "\n".join(self.logs(container, tail=count))
        except DeployError as exc:
            return f"(no logs: {exc})"

    def put_files(
        self, container: str, files: Dict[str, Tuple[Union[bytes, Path], int]], *, owner: int = 0
    ) -> None:
        """Copy files into a (created, not yet started) container, its volumes included:
        ``{absolute path: (content or a local file, mode)}``, in that order.

        Works on remote engines too (the Engine API's archive upload), unlike a bind mount. The archive is
        spooled to a temporary file, so a large model is never held in memory.
        """
        import io
        import tarfile
        import tempfile

        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                folders = sorted({str(Path(path).parent).lstrip("/") for path in files} - {""})
                for folder in folders:
                    for k in range(1, len(Path(folder).parts) + 1):
                        info = tarfile.TarInfo("/".join(Path(folder).parts[:k]))
                        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, owner, owner
                        tar.addfile(info)
                for path, (content, mode) in files.items():
                    info = tarfile.TarInfo(path.lstrip("/"))
                    info.mode, info.uid, info.gid = mode, owner, owner
                    if isinstance(content, Path):
                        info.size = content.stat().st_size
                        with open(content, "rb") as source:
                            tar.addfile(info, source)
                    else:
                        info.size = len(content)
                        tar.addfile(info, io.BytesIO(content))
            buffer.seek(0)
            with self._translate(f"copying files into {container}"):
                self._client.api.put_archive(container, "/", buffer)

    def read_file(self, container: str, path: str) -> Optional[bytes]:
        """A small file's content from a container (its volumes included), or None when there is no such file."""
        found: List[bytes] = []
        if not self._each_file(container, path, lambda handle: found.append(handle.read())):
            return None
        return found[0] if found else None

    def file_sha256(self, container: str, path: str) -> Optional[str]:
        """The sha256 of a file in a container, streamed (never held whole), or None when there is no such file."""
        import hashlib

        digests: List[str] = []

        def digest(handle: Any) -> None:
            h = hashlib.sha256()
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
            digests.append(h.hexdigest())

        if not self._each_file(container, path, digest):
            return None
        return digests[0] if digests else None

    def _each_file(self, container: str, path: str, use: Any) -> bool:
        """Stream ``path`` out of the container as a tar and call ``use(file)`` on its regular file; False when
        the path does not exist."""
        import tarfile

        import docker.errors

        with self._translate(f"reading {path} from {container}"):
            try:
                chunks, _ = self._client.api.get_archive(container, path)
            except docker.errors.NotFound:
                return False
            with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
                for member in tar:
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        use(handle)
        return True

    def wait_removed(self, container: str, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.container(container) is not None and time.monotonic() < deadline:
            time.sleep(0.1)


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the Engine API's streamed archives)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _state(attrs: Dict[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return ContainerState(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(attrs.get("RestartCount") or 0),
        image=str(config.get("Image", "")),
        image_id=str(attrs.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        started_at=str(state.get("StartedAt", "")),
        finished_at=str(state.get("FinishedAt", "")),
        error=str(state.get("Error", "")),
    )


def _generic_gpus(resources: Any) -> Optional[int]:
    count = 0
    for item in resources or []:
        discrete = item.get("DiscreteResourceSpec") or {}
        named = item.get("NamedResourceSpec") or {}
        if "GPU" in str(discrete.get("Kind", "")).upper():
            count += int(discrete.get("Value") or 0)
        elif "GPU" in str(named.get("Kind", "")).upper():
            count += 1
    return count or None


def _tls_config(folder: Path, device: Optional[str]) -> Any:
    import docker.tls

    files = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise DeployError(
            f"docker_tls: missing {', '.join(missing)} (expected ca.pem, cert.pem, key.pem)", device=device
        )
    return docker.tls.TLSConfig(
        client_cert=(str(files["cert"]), str(files["key"])), ca_cert=str(files["ca"]), verify=True
    )


def _reason(exc: BaseException) -> str:
    """The most useful one-line reason from a docker/requests error chain."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)
    text = str(exc) or type(exc).__name__
    for marker in (
        "Connection refused",
        "No such file or directory",
        "timed out",
        "Name or service not known",
        "Permission denied",
    ):
        if marker in text:
            return marker.lower() if marker != "No such file or directory" else "no such socket"
    return text.splitlines()[0][:300]
