"""Other work on the machine: figures taken next to a busy process are not comparable."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BUSY_SHARE = 0.10
MIN_TICKS = 100


@dataclass(frozen=True)
class BusyProcess:
    pid: int
    command: str
    cpu_share: float  # of one CPU

    def describe(self) -> str:
        return f"pid {self.pid} `{self.command}` {self.cpu_share:.0%} of a CPU"


def _process_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat.rpartition(")")[2].split()


def _cpu_ticks() -> dict[int, int]:
    """utime + stime (clock ticks) of every process."""
    return {pid: int(fields[11]) + int(fields[12]) for pid, fields in _process_stats()}


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:80] or "?"


def busy_processes(window_s: float = 1.0) -> list[BusyProcess]:
    """Processes other than this one that used over 10% of a CPU during `window_s`."""
    if not Path("/proc/self/stat").exists():
        return []
    before = _cpu_ticks()
    time.sleep(window_s)
    after = _cpu_ticks()
    per_second = os.sysconf("SC_CLK_TCK") * window_s
    own = os.getpid()
    busy = [
        BusyProcess(pid, _command(pid), (ticks - before[pid]) / per_second)
        for pid, ticks in after.items()
        if pid != own and pid in before and (ticks - before[pid]) / per_second >= BUSY_SHARE
    ]
    return sorted(busy, key=lambda p: p.cpu_share, reverse=True)


# --- watching the CPUs during a measurement ---------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    return {pid: int(fields[1]) for pid, fields in _process_stats()}


def _with_descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pids_with_command(fragment: str) -> set[int]:
    """Processes whose command line contains `fragment` (e.g. a PostgreSQL port flag)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fragment.encode() in command:
            found.add(int(entry.name))
    return found


def _cpu_totals() -> list[int]:
    """The machine's `cpu` line of /proc/stat: user, nice, system, idle, iowait, irq,
    softirq, steal, ... in clock ticks (empty where there is no /proc)."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return []


class CpuWatch:
    """Other processes' CPU use over a stretch of work, not counting the benchmark's own.

    `start()` and `busy()` bracket the work; this process, its descendants (the
    server, py-spy) and the processes in `ours` with their descendants (e.g. the
    benchmark's PostgreSQL postmaster) are left out. `steal` is then the share of
    the machine's CPU time the hypervisor gave to other guests (invisible as
    processes).
    """

    def __init__(self, ours: set[int] | None = None) -> None:
        self.ours = ours or set()
        self._ticks: dict[int, int] = {}
        self._totals: list[int] = []
        self._started = 0.0
        self.steal = float("nan")

    def start(self) -> CpuWatch:
        self._ticks = _cpu_ticks() if Path("/proc/self/stat").exists() else {}
        self._totals = _cpu_totals()
        self._started = time.monotonic()
        return self

    def busy(self) -> list[BusyProcess]:
        """Processes that used over 10% of a CPU on average since `start()`."""
        totals = _cpu_totals()
        spent = [b - a for a, b in zip(self._totals, totals, strict=False)]
        # Under MIN_TICKS (about half a second of both CPUs) the share is too coarse.
        enough = len(spent) > 7 and sum(spent) >= MIN_TICKS
        self.steal = spent[7] / sum(spent) if enough else float("nan")
        if not self._ticks:
            return []
        elapsed = time.monotonic() - self._started
        after = _cpu_ticks()
        own = _with_descendants({os.getpid(), *self.ours})
        per_second = os.sysconf("SC_CLK_TCK") * max(elapsed, 1e-3)
        busy = [
            BusyProcess(pid, _command(pid), (ticks - self._ticks[pid]) / per_second)
            for pid, ticks in after.items()
            if pid not in own
            and pid in self._ticks
            and (ticks - self._ticks[pid]) / per_second >= BUSY_SHARE
        ]
        return sorted(busy, key=lambda p: p.cpu_share, reverse=True)
