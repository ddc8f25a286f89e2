"""Other work on the machine: figures taken next to a busy process are not comparable."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

BUSY_SHARE = 0.10


@dataclass(frozen=True)
class BusyProcess:
    pid: int
    command: str
    cpu_share: float  # of one CPU

    def describe(self) -> str:
        return f"pid {self.pid} `{self.command}` {self.cpu_share:.0%} of a CPU"


def _cpu_ticks() -> dict[int, int]:
    """utime + stime (clock ticks) of every process."""
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


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
