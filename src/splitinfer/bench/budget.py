"""A CPU budget for the head side of ``bench e2e``: a cgroup with a CPU quota, so one core of this machine can
stand for a Jetson-class camera (a fifth of a core, say) against an unconstrained server tail.

    with CpuBudget.create(0.2) as budget:                 # needs root and the cgroup cpu controller
        procs.start("head", budget.command(argv))         # a shell joins the cgroup, then execs argv
        procs.start("head", budget.command(argv, preload=("torch",), wrap=netns_exec))
    # the cgroup is removed here (anything still in it goes back to the parent first)

Both hierarchies are supported: cgroup v2 (``cpu.max``, where the unified hierarchy has the cpu controller)
and cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). :func:`budget_unavailable_reason` says why no
budget can be made here (not root, no cpu controller); the bench then refuses to run a budgeted point rather
than report unconstrained numbers under a budget's name.

The quota is enforced per period. With the kernel's default 100 ms period a short burst of work runs at full
speed until the period's quota is spent (a 10 ms burst at 0.2 core took 18 ms, not 50), so per-layer profiles
would see a fast CPU and whole frames a slow one. The default period here is 5 ms (quota 1 ms at 0.2 core, the
kernel's minimum), which makes the budget behave like a uniformly slower CPU at the scale of one layer (10 ms
of work took 47 ms, 50 ms took 244 ms). Budgets below 0.2 core lengthen the period to keep the quota ≥ 1 ms.

``preload``: ``ip netns exec`` mounts a fresh ``/sys`` without the cgroup file systems, so a process in a
namespace cannot join a cgroup by path. The shell opens ``cgroup.procs`` first and hands it on as file
descriptor 9; the launcher (``python -m splitinfer.bench.budget``) imports the ``preload`` modules, writes its
own pid to that descriptor and only then runs the program. A Python program's boot (torch and Ultralytics:
~2.5 s of CPU, 15 s at 0.2 core) is then not paid per configuration; everything after it — loading the model,
profiling, every frame — runs within the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from splitinfer.errors import BenchError

__all__ = ["CpuBudget", "budget_unavailable_reason", "cpu_seconds", "find_cpu_hierarchy", "main"]

DEFAULT_PERIOD_US = 5000
MIN_QUOTA_US = 1000  # the kernel refuses smaller quotas
MAX_PERIOD_US = 1_000_000
PROCS_FD = 9
_JOIN = 'echo $$ > "$0" || exit 125; exec "$@"'
_HAND_ON = 'exec 9>"$0" || exit 125; exec "$@"'


def _mounts(text: Optional[str] = None) -> List[Tuple[str, str, List[str]]]:
    """(mount point, type, options) of every cgroup file system in /proc/self/mounts."""
    if text is None:
        try:
            text = Path("/proc/self/mounts").read_text()
        except OSError:
            return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1], parts[2], parts[3].split(",")))
    return out


def find_cpu_hierarchy(mounts: Optional[str] = None) -> Optional[Tuple[int, Path]]:
    """(2, root) where the unified hierarchy has the cpu controller, else (1, root) of a v1 hierarchy with
    ``cpu`` (and CFS bandwidth control), else None. ``mounts``: /proc/self/mounts' text (for tests)."""
    found = _mounts(mounts)
    for point, kind, _ in found:
        if kind == "cgroup2":
            try:
                controllers = (Path(point) / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "cpu" in controllers:
                return 2, Path(point)
    for point, kind, options in found:
        if kind == "cgroup" and "cpu" in options and (Path(point) / "cpu.cfs_quota_us").exists():
            return 1, Path(point)
    return None


def budget_unavailable_reason() -> Optional[str]:
    """Why a CPU budget cannot be made here (None if it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a CPU budget needs root (it makes a cgroup)"
    if find_cpu_hierarchy() is None:
        return ("no cgroup cpu controller is mounted (neither cgroup v2 with cpu in cgroup.controllers nor a v1 "
                "hierarchy with cpu.cfs_quota_us)")
    return None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise BenchError(f"CPU budget: cannot write {text.strip()!r} to {path}: {exc.strerror or exc}") from exc


@dataclass
class CpuBudget:
    """A cgroup whose processes share ``cores`` of CPU time (quota ``cores × period``)."""

    cores: float
    path: Path
    version: int
    period_us: int

    @classmethod
    def create(cls, cores: float, *, name: Optional[str] = None, period_us: int = DEFAULT_PERIOD_US,
               hierarchy: Optional[Tuple[int, Path]] = None) -> CpuBudget:
        """Make the cgroup (under the hierarchy's root) with its quota. BenchError says why when it cannot be
        made; ``hierarchy`` overrides the one found (for tests)."""
        if not 0.0 < cores <= 1024:
            raise BenchError(f"CPU budget: cores must be > 0, got {cores:g}")
        if hierarchy is None:
            reason = budget_unavailable_reason()
            if reason:
                raise BenchError(f"CPU budget of {cores:g} core: {reason}")
            hierarchy = find_cpu_hierarchy()
            assert hierarchy is not None
        version, root = hierarchy
        period = min(MAX_PERIOD_US, max(period_us, int(MIN_QUOTA_US / cores + 0.999)))
        path = root / (name or f"splitinfer-budget-{os.getpid()}-{int(cores * 1000)}")
        if version == 2:
            cls._enable_cpu(root)
        try:
            path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise BenchError(f"CPU budget: cannot make the cgroup {path}: {exc.strerror or exc}") from exc
        budget = cls(cores=cores, path=path, version=version, period_us=period)
        try:
            budget._set_quota()
        except BenchError:
            budget.delete()
            raise
        return budget

    @staticmethod
    def _enable_cpu(root: Path) -> None:
        control = root / "cgroup.subtree_control"
        try:
            if "cpu" in control.read_text().split():
                return
        except OSError as exc:
            raise BenchError(f"CPU budget: cannot read {control}: {exc.strerror or exc}") from exc
        _write(control, "+cpu")

    @property
    def quota_us(self) -> int:
        return max(MIN_QUOTA_US, round(self.cores * self.period_us))

    def _set_quota(self) -> None:
        if self.version == 2:
            _write(self.path / "cpu.max", f"{self.quota_us} {self.period_us}\n")
        else:  # v1: the period first, so the quota is never checked against the old one
            _write(self.path / "cpu.cfs_period_us", f"{self.period_us}\n")
            _write(self.path / "cpu.cfs_quota_us", f"{self.quota_us}\n")

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        """Move a running process (every thread of it) into the budget."""
        _write(self.procs, f"{pid}\n")

    def pids(self) -> List[int]:
        try:
            return [int(x) for x in self.procs.read_text().split()]
        except OSError:
            return []

    def command(self, argv: Sequence[str], *, preload: Sequence[str] = (),
                wrap: Callable[[List[str]], List[str]] = list) -> List[str]:
        """A command line that runs ``argv`` within the budget: a shell joins the cgroup, then execs
        ``wrap(argv)`` (``wrap`` may put it in a network namespace). With ``preload``, ``argv`` must be
        ``[python, -m, module, args…]``: the launcher imports ``preload`` first and joins just before running
        the module (see the module docstring)."""
        if not preload:
            return ["sh", "-c", _JOIN, str(self.procs), *wrap(list(argv))]
        if len(argv) < 3 or argv[1] != "-m":
            raise BenchError(f"CPU budget: preload needs a `python -m module` command, got {' '.join(argv[:3])}")
        launcher = [argv[0], "-m", __name__, "--fd", str(PROCS_FD), "--preload", ",".join(preload), "--",
                    *argv[2:]]
        return ["sh", "-c", _HAND_ON, str(self.procs), *wrap(launcher)]

    def stat(self) -> Dict[str, int]:
        """The controller's counters (v1 ``cpu.stat``: nr_periods, nr_throttled, throttled_time in ns; v2 adds
        usage_usec and throttled_usec)."""
        try:
            lines = (self.path / "cpu.stat").read_text().splitlines()
        except OSError:
            return {}
        return {k: int(v) for k, v in (line.split()[:2] for line in lines if len(line.split()) >= 2)
                if v.lstrip("-").isdigit()}

    def describe(self) -> str:
        return (f"{self.cores:g} core (cgroup v{self.version} {self.path}, quota {self.quota_us} µs per "
                f"{self.period_us} µs)")

    def delete(self) -> None:
        """Remove the cgroup; processes still in it go back to the parent first. Idempotent."""
        if not self.path.exists():
            return
        for pid in self.pids():
            with contextlib.suppress(OSError):  # it exited meanwhile
                (self.path.parent / "cgroup.procs").write_text(f"{pid}\n")
        with contextlib.suppress(OSError):  # something still in it: leave the cgroup rather than touch that process
            self.path.rmdir()

    def __enter__(self) -> CpuBudget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _preload(modules: Iterable[str]) -> None:
    for name in modules:
        if name:
            importlib.import_module(name)


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m splitinfer.bench.budget --fd 9 --preload torch,ultralytics -- MODULE ARGS…``: import, join
    the cgroup whose ``cgroup.procs`` is open on the descriptor, then run ``python -m MODULE ARGS…`` here."""
    parser = argparse.ArgumentParser(prog="python -m splitinfer.bench.budget")
    parser.add_argument("--fd", type=int, required=True, help="cgroup.procs, opened for writing")
    parser.add_argument("--preload", default="", help="modules to import before joining, comma-separated")
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    _preload(args.preload.split(","))
    try:
        os.write(args.fd, f"{os.getpid()}\n".encode())
        os.close(args.fd)
    except OSError as exc:
        sys.exit(f"splitinfer.bench.budget: cannot join the cgroup on descriptor {args.fd}: {exc}")
    sys.argv = [args.module, *args.args]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
