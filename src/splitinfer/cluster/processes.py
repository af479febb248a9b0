"""The one process launcher: named child processes of a system on this machine, each with its own log, checked
and stopped together. ``run --local``, ``splitctl bench`` and the tests all start their brokers' neighbours
(coordinator, tails, heads, helpers) through :class:`Processes`.

    with Processes(Path("out/logs")) as procs:
        procs.start("tail", node_command("node", "tail", "--id", "tail-1", "--broker", url))
        procs.check()                          # ProcessError if one exited early
    # every process is stopped here: SIGTERM, then SIGKILL after ``grace`` seconds
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from splitinfer.broker.local import child_env
from splitinfer.errors import ProcessError

__all__ = ["Processes", "last_error", "node_command"]


def node_command(*args: str) -> List[str]:
    """``python -m splitinfer ARGS``: the same programs the containers run, from this very splitinfer."""
    return [sys.executable, "-m", "splitinfer", *args]


def last_error(log: Path) -> str:
    """The last line of a log that names an error, for a one-line message."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    lines = [line for line in text.splitlines() if "error" in line.lower()]
    return lines[-1].split("error:", 1)[-1].strip() if lines else "no error line in its log"


class Processes:
    """Child processes by name. Output goes to ``<logs>/<name>.log`` (stdout too, unless captured with
    ``stdout=subprocess.PIPE``). Children import this checkout's splitinfer (:func:`child_env`)."""

    def __init__(self, logs: Path, *, append: bool = False, grace: float = 10.0) -> None:
        self.logs = logs
        self.append = append
        self.grace = grace
        self.procs: Dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, argv: Sequence[str], *, stdout: Optional[int] = None, new_session: bool = False,
              env: Optional[Mapping[str, str]] = None) -> subprocess.Popen:
        """Start ``argv`` as ``name`` (a name in use must have been stopped first); ``env`` adds variables."""
        if name in self.procs and self.procs[name].poll() is None:
            raise ProcessError(f"a process named {name!r} is already running", name=name)
        child = child_env()
        # the nodes of a one-machine system share its cores: one torch thread each (as measured in the README)
        # unless SPLITINFER_THREADS or --threads says otherwise; a deployed node alone on its device takes all
        child.setdefault("SPLITINFER_THREADS", "1")
        with open(self.log(name), "ab" if self.append else "wb") as log:  # the child keeps its own handle
            self.procs[name] = subprocess.Popen(
                list(argv), stdout=log if stdout is None else stdout, stderr=log, stdin=subprocess.DEVNULL,
                env={**child, **(env or {})}, start_new_session=new_session,
            )
        return self.procs[name]

    def __getitem__(self, name: str) -> subprocess.Popen:
        return self.procs[name]

    def __contains__(self, name: str) -> bool:
        return name in self.procs

    def failure(self, name: str, what: str = "exited early") -> ProcessError:
        proc = self.procs[name]
        return ProcessError(f"the {name} process {what}: {last_error(self.log(name))} (code {proc.returncode}; "
                            f"see {self.log(name)})", name=name, returncode=proc.returncode, log=str(self.log(name)))

    def check(self, names: Optional[Iterable[str]] = None, *, allowed: Sequence[int] = ()) -> None:
        """ProcessError for the first of ``names`` (default: all) that has exited with a status not in ``allowed``."""
        for name in self.procs if names is None else names:
            code = self.procs[name].poll()
            if code is not None and code not in allowed:
                raise self.failure(name)

    def wait(self, name: str, timeout: float) -> int:
        """Wait for ``name`` to exit; ProcessError if it does not within ``timeout`` or exits non-zero."""
        proc = self.procs[name]
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"the {name} process did not finish within {timeout:.0f} s; see {self.log(name)}",
                               name=name, log=str(self.log(name))) from None
        if proc.returncode != 0:
            raise self.failure(name, "failed")
        return proc.returncode

    def wait_for_line(self, name: str, text: str, timeout: float, *, offset: int = 0) -> None:
        """Until ``text`` appears in ``name``'s log after byte ``offset``; ProcessError if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log(name), "rb") as fh:
                fh.seek(offset)
                if text.encode() in fh.read():
                    return
            self.check([name])
            time.sleep(0.1)
        raise ProcessError(f"the {name} process did not log {text.strip()!r} within {timeout:.0f} s; see "
                           f"{self.log(name)}", name=name, log=str(self.log(name)))

    def tails(self, lines: int = 15) -> str:
        """The last lines of every log, for a failure message."""
        out = []
        for name in self.procs:
            try:
                text = self.log(name).read_text(errors="replace").splitlines()
            except OSError:
                text = []
            out.append(f"--- {name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def stop(self, names: Optional[Iterable[str]] = None) -> None:
        """Terminate ``names`` (default: all) together, then kill what is still there after ``grace`` seconds."""
        chosen = [self.procs[n] for n in (list(self.procs) if names is None else names) if n in self.procs]
        for proc in chosen:
            if proc.poll() is None:
                proc.terminate()
        for proc in chosen:
            try:
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self, names: Iterable[str]) -> None:
        """SIGKILL ``names`` and reap them (a power loss, not a shutdown)."""
        for name in names:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
