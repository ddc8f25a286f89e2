"""Warm-up and timed runs of one benchmark query, and their latencies (bench.query)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .loader import summarise_ms
from .machine import BusyProcess
from .stats import percentile

SLOW_CALL_MS = 1000.0
MIN_RUNS = 10

T = TypeVar("T")


def finite(value: float) -> float | None:
    """`value`, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(value) else value


@dataclass
class Latencies:
    """Client-observed milliseconds of the timed runs of one query."""

    name: str
    filter: str
    warmups: int
    ms: list[float]
    server_ms: list[float] = field(default_factory=list)  # handler time the server logged
    note: str = ""
    shortened: bool = False
    busy: list[BusyProcess] = field(default_factory=list)  # other work during the runs
    steal: float = float("nan")  # share of CPU time taken by other VMs (nan: too short)

    def p(self, fraction: float) -> float:
        return percentile(self.ms, fraction)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "filter": self.filter,
            "warmup_runs": self.warmups,
            "timed_runs": len(self.ms),
            "latency_ms": summarise_ms(self.ms),
            "server_handler_ms": summarise_ms(self.server_ms),
            "latency_ms_each": [round(x, 3) for x in self.ms],
            "shortened": self.shortened,
            "note": self.note,
            "other_busy_processes": [vars(p) for p in self.busy],
            "cpu_steal_share": finite(self.steal),
        }


@dataclass(frozen=True)
class RunPlan:
    """Warm-up and timed runs of one query, and the time budget that may shorten them."""

    warmups: int
    runs: int
    budget_s: float = float("inf")


def time_runs(call: Callable[[int], T], check: Callable[[int, T], None], plan: RunPlan
              ) -> tuple[list[float], int, str]:  # fmt: skip
    """Warm-up calls, then timed ones; every result is checked (after its clock stops).

    Returns the timed milliseconds, the warm-ups done and a note on any shortening:
    warming up stops after a call slower than SLOW_CALL_MS (caches cannot be what
    makes it slow), and a query whose last warm-up says the timed runs would take
    over the budget gets only as many as fit (at least MIN_RUNS, never more than
    planned).
    """
    warm_ms: list[float] = []
    for run in range(plan.warmups):
        started = time.perf_counter()
        result = call(run)
        warm_ms.append((time.perf_counter() - started) * 1000.0)
        check(run, result)
        if warm_ms[-1] > SLOW_CALL_MS:
            break
    warmups, runs, note = len(warm_ms), plan.runs, ""
    if warm_ms and warm_ms[-1] * runs > plan.budget_s * 1000.0:
        runs = min(runs, max(MIN_RUNS, int(plan.budget_s * 1000.0 / warm_ms[-1])))
    if warmups < plan.warmups or runs < plan.runs:
        note = (
            f"shortened: {warmups} warm-up + {runs} timed runs instead of {plan.warmups} + "
            f"{plan.runs} (a warm-up call took {warm_ms[-1] / 1000:.1f} s; "
            f"budget {plan.budget_s:.0f} s per query)"
        )
    timed: list[float] = []
    for run in range(warmups, warmups + runs):
        started = time.perf_counter()
        result = call(run)
        timed.append((time.perf_counter() - started) * 1000.0)
        check(run, result)
    return timed, warmups, note
