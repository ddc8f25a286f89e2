"""The printed table of figures, and the JSON results file."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from .profiling import ProfileSummary
from .server import REPO_ROOT


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    bound: float

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def miss(self, value: float) -> str:
        """How far a missed value is from the target."""
        if self.op == ">=":
            return f"{value / self.bound:.0%} of target; needs {self.bound / value:.1f}x"
        return f"{value / self.bound:.1f}x the limit"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    target: Target | None = None
    spread: float | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a" if self.target else ""
        if self.target is None:
            return ""
        if self.target.met(self.value):
            return "met"
        return f"MISSED ({self.target.miss(self.value)})"

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": f"{self.target.op} {self.target.bound:g}" if self.target else None,
            "met": self.target.met(self.value) if self.target and self.value is not None else None,
            "status": self.status,
            "spread": self.spread,
            "note": self.note,
        }


def format_value(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "rec/s":
        return f"{value:,.0f} rec/s"
    if unit == "rps":
        return f"{value:,.0f} rps"
    if unit == "x":
        return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}"


def format_target(target: Target | None, unit: str) -> str:
    if target is None:
        return ""
    return f"{'≥' if target.op == '>=' else '≤'} {format_value(target.bound, unit)}"


def render_table(rows: list[Row]) -> str:
    header = ("Figure", "Measured", "Range", "Target", "Result")
    cells = [
        (
            row.label,
            format_value(row.value, row.unit),
            f"{row.spread:.0%}" if row.spread is not None else "",
            format_target(row.target, row.unit),
            row.status,
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(values: tuple[str, ...]) -> str:
        parts = [
            v.rjust(w) if i in (1, 2) else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def render_profile(summary: ProfileSummary) -> str:
    lines = [
        f"Profile of the server, {summary.backend}, {summary.bundles} {summary.calls} "
        f"({summary.tool}"
        + (f", {summary.samples} samples" if summary.samples else "")
        + f"): share of {summary.rpc} handler time",
    ]
    lines += [f"  {share:6.1%}  {label}" for label, share in summary.shares]
    lines.append("  most self time:")
    lines += [f"  {share:6.1%}  {name}" for name, share in summary.top_self]
    return "\n".join(lines)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    return done.stdout.strip()


def environment() -> dict[str, object]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "server", "client", "protos")),
    }


def arguments(args: argparse.Namespace) -> dict[str, object]:
    """A run's command-line arguments as JSON values (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def write_results(directory: Path, payload: dict[str, object], name: str = "metadata") -> Path:
    """Write results to NAME-<time>.json and to NAME-latest.json; returns the first."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{name}-{stamp}.json"
    text = json.dumps(payload, indent=2, sort_keys=False, default=str)
    path.write_text(text + "\n")
    (directory / f"{name}-latest.json").write_text(text + "\n")
    return path
