"""The head's CPU budget: a process in the cgroup really gets at most its quota, the launcher joins it after its
imports, and the control files are written as each cgroup version expects.

The live tests need root and the cgroup cpu controller; they are skipped, with the reason, where a cgroup cannot
be made.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from splitinfer.bench.budget import CpuBudget, budget_unavailable_reason, cpu_seconds, find_cpu_hierarchy
from splitinfer.errors import BenchError

SPIN = "while True: pass"


@pytest.fixture
def budget() -> Iterator[CpuBudget]:
    reason = budget_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with CpuBudget.create(0.25, name=f"splitinfer-test-{time.monotonic_ns()}") as made:
        yield made
    assert not made.path.exists()


def _stop(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_process_in_the_budget_gets_at_most_its_quota(budget: CpuBudget) -> None:
    held = subprocess.Popen(budget.command([sys.executable, "-c", SPIN]))
    free = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        while held.pid not in budget.pids():  # the shell joins, then execs the spinner (same pid)
            assert held.poll() is None
            time.sleep(0.01)
        start = time.monotonic()
        before = cpu_seconds(held.pid), cpu_seconds(free.pid)
        # interleaved: sample until the unconstrained one has had a good second of CPU (or 20 s have passed)
        while cpu_seconds(free.pid) - before[1] < 1.0 and time.monotonic() - start < 20.0:
            time.sleep(0.05)
        wall = time.monotonic() - start
        held_share = (cpu_seconds(held.pid) - before[0]) / wall
        free_share = (cpu_seconds(free.pid) - before[1]) / wall
    finally:
        _stop([held, free])
    assert held_share <= 0.25 * 1.15 + 0.01, (held_share, free_share)
    assert held_share > 0.05, held_share  # it ran
    assert budget.stat().get("nr_throttled", 0) > 0  # and was held back (the free one's share depends on the
    # machine's other work, so it is only reported)


def test_the_launcher_joins_after_its_imports_through_a_descriptor(budget: CpuBudget, tmp_path: Path) -> None:
    (tmp_path / "whereami.py").write_text("print(open('/proc/self/cgroup').read())\n")
    argv = budget.command([sys.executable, "-m", "whereami"], preload=("json",))
    assert argv[:2] == ["sh", "-c"] and "splitinfer.bench.budget" in argv
    from splitinfer.broker.local import child_env

    env = child_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert f"/{budget.path.name}" in done.stdout  # the module ran inside the budget's cgroup


def test_control_files_per_cgroup_version(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.subtree_control").write_text("memory\n")
    made = CpuBudget.create(0.2, name="b", hierarchy=(2, v2))
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu"  # the kernel reads it as "memory cpu"
    assert (v2 / "b" / "cpu.max").read_text() == "1000 5000\n"
    assert made.command(["sleep", "1"]) == ["sh", "-c", 'echo $$ > "$0" || exit 125; exec "$@"',
                                            str(v2 / "b" / "cgroup.procs"), "sleep", "1"]
    v1 = tmp_path / "v1"
    v1.mkdir()
    slow = CpuBudget.create(0.1, name="b", hierarchy=(1, v1))  # below 0.2 core the period grows: quota ≥ 1 ms
    assert (v1 / "b" / "cpu.cfs_period_us").read_text() == "10000\n"
    assert (v1 / "b" / "cpu.cfs_quota_us").read_text() == "1000\n"
    with pytest.raises(BenchError, match="python -m module"):
        slow.command(["sleep", "1"], preload=("torch",))
    with pytest.raises(BenchError, match="cores must be > 0"):
        CpuBudget.create(0.0, hierarchy=(1, v1))


def test_the_hierarchy_with_the_cpu_controller_is_found(tmp_path: Path) -> None:
    unified, legacy = tmp_path / "unified", tmp_path / "cpu"
    unified.mkdir()
    legacy.mkdir()
    (unified / "cgroup.controllers").write_text("memory pids\n")
    (legacy / "cpu.cfs_quota_us").write_text("-1\n")
    mounts = (f"cgroup2 {unified} cgroup2 rw,nosuid 0 0\n"
              f"cgroup {legacy} cgroup rw,nosuid,cpu 0 0\n"
              "proc /proc proc rw 0 0\n")
    assert find_cpu_hierarchy(mounts) == (1, legacy)  # v2 is mounted, but without cpu: v1's controller
    (unified / "cgroup.controllers").write_text("cpu memory pids\n")
    assert find_cpu_hierarchy(mounts) == (2, unified)
    assert find_cpu_hierarchy("proc /proc proc rw 0 0\n") is None
