"""Timing helpers: repeated measurements, medians and percentiles."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each repetition of one measurement over `items` items."""

    items: int
    seconds: tuple[float, ...]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Items per second at the median repetition."""
        return self.items / self.median_seconds

    @property
    def rates(self) -> list[float]:
        return [self.items / s for s in self.seconds]

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how noisy the repetitions were."""
        return (max(self.seconds) - min(self.seconds)) / self.median_seconds

    def to_json(self) -> dict[str, object]:
        return {
            "items": self.items,
            "seconds": list(self.seconds),
            "median_seconds": self.median_seconds,
            "rate_per_second": self.rate,
            "spread": self.spread,
        }


def time_repeated(action: Callable[[], object], items: int, repeats: int) -> Timing:
    """Run `action` `repeats` times after one untimed warm-up.

    The garbage collector stays on (its cost is part of each validator's cost),
    but each repetition starts from a collected heap.
    """
    action()
    seconds: list[float] = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return Timing(items, tuple(seconds))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in 0..1) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
