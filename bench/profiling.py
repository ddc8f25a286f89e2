"""Where the server spends an ApplyBundle: a profile summary for missed targets.

With py-spy (if installed in the virtualenv or on PATH; it is not a project
dependency) the real `metareg serve` process is sampled from outside, wall
clock, idle time included, and only samples of the thread running an
ApplyBundle handler are kept. Without it the server runs as
`bench.profiled_server` with the handler under cProfile (which inflates the
share of Python-heavy code).

The summary gives, for a fixed list of functions, the share of handler time
spent inside each (inclusive), plus the functions with the most self time.
"""

from __future__ import annotations

import collections
import os
import pstats
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .server import BIN, REPO_ROOT

SAMPLE_RATE_HZ = 200
HANDLER = "MetadataServicer.ApplyBundle"


@dataclass(frozen=True)
class Watch:
    """A function to report: its label, a suffix of its file path and its qualified name."""

    label: str
    path: str
    qualname: str
    # Count only time in the function itself (e.g. a wait that drives nested work).
    self_only: bool = False

    def matches(self, path: str, qualname: str) -> bool:
        return path.endswith(self.path) and (
            qualname == self.qualname or qualname == self.qualname.rsplit(".", 1)[-1]
        )


WATCHED: tuple[Watch, ...] = (
    Watch("decode request values (update_from_proto)", "api/convert.py", "update_from_proto"),
    Watch("plan_bundle: validate, merge, encode", "domain/bundle.py", "plan_bundle"),
    Watch("  validate (CompiledValidator.check)", "domain/validator.py", "CompiledValidator.check"),
    Watch("    datetime checks (values.check_datetime)", "domain/values.py", "check_datetime"),
    Watch("  encode JSON + blobs (encode_record)", "domain/validator.py", "encode_record"),
    Watch("load existing records (records.load_records)", "storage/records.py", "load_records"),
    Watch("write records (records.write_records)", "storage/records.py", "write_records"),
    Watch("  insert metadata_records (_insert_absent)", "storage/records.py", "_insert_absent"),
    Watch("  upsert metadata_embeddings", "storage/records.py", "_write_embeddings"),
    Watch(
        "  SQLAlchemy per-row parameter processing",
        "sqlalchemy/engine/default.py",
        "DefaultExecutionContext._init_compiled",
    ),
    Watch("  psycopg client-side query conversion", "psycopg/_queries.py", "PostgresQuery.convert"),
    Watch(
        "  waiting on PostgreSQL (psycopg Connection.wait, self)",
        "psycopg/connection.py",
        "Connection.wait",
        self_only=True,
    ),
    Watch("commit", "sqlalchemy/engine/default.py", "DefaultDialect.do_commit"),
    Watch("build response (add_results)", "api/convert.py", "add_results"),
)


@dataclass
class ProfileSummary:
    tool: str
    backend: str
    bundles: int  # calls profiled (bundles for ApplyBundle)
    # Share of ApplyBundle handler time spent inside each watched function.
    shares: list[tuple[str, float]] = field(default_factory=list)
    # Functions with the most self time, as a share of handler time.
    top_self: list[tuple[str, float]] = field(default_factory=list)
    samples: int = 0
    # The RPC whose handler time the shares are of, and what its calls are.
    rpc: str = "ApplyBundle"
    calls: str = "bundles"

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "backend": self.backend,
            "rpc": self.rpc,
            "bundles": self.bundles,
            "samples": self.samples,
            "inclusive_share_of_handler": dict(self.shares),
            "top_self_share_of_handler": dict(self.top_self),
        }


def py_spy_path() -> str | None:
    return shutil.which("py-spy", path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))


# --- py-spy --------------------------------------------------------------------


@contextmanager
def py_spy_recording(pid: int, output: Path) -> Iterator[None]:
    """Sample `pid` (all threads, idle included) for the duration of the block."""
    tool = py_spy_path()
    assert tool is not None
    command = [tool, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE_HZ)]
    command += ["--format", "raw", "--output", str(output), "--threads", "--idle"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach before the work starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _parse_frame(frame: str) -> tuple[str, str]:
    """("Qual.name", "path/file.py") from py-spy's "Qual.name (path/file.py:123)"."""
    name, _, location = frame.partition(" (")
    return name, location.rsplit(":", 1)[0]


def _handler_stacks(
    raw: Path, handler: str = HANDLER
) -> Iterator[tuple[list[tuple[str, str]], int]]:
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_parse_frame(f) for f in stack.split(";")[1:]]
        if any(name == handler for name, _ in frames):
            yield frames, int(count)


def summarise_py_spy(
    raw: Path,
    backend: str,
    bundles: int,
    *,
    handler: str = HANDLER,
    watched: tuple[Watch, ...] = WATCHED,
    calls: str = "bundles",
) -> ProfileSummary:
    """Shares of `handler`'s samples (a servicer method, e.g. MetadataServicer.ApplyBundle)."""
    inside: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in _handler_stacks(raw, handler):
        total += count
        name, path = frames[-1]
        for watch in watched:
            considered = frames[-1:] if watch.self_only else frames
            if any(watch.matches(p, n) for n, p in considered):
                inside[watch.label] += count
        self_time[f"{name} ({path})"] += count
    rpc = handler.rsplit(".", 1)[-1]
    summary = ProfileSummary("py-spy", backend, bundles, samples=total, rpc=rpc, calls=calls)
    if total:
        summary.shares = [(w.label, inside[w.label] / total) for w in watched]
        summary.top_self = [(k, v / total) for k, v in self_time.most_common(12)]
    return summary


# --- cProfile --------------------------------------------------------------------


def summarise_cprofile(path: Path, backend: str, bundles: int) -> ProfileSummary:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    entries = [
        (filename, funcname, tottime, cumtime)
        for (filename, _line, funcname), (_cc, _nc, tottime, cumtime, _callers) in stats.items()
    ]
    handler = sum(
        cum
        for filename, name, _, cum in entries
        if filename.endswith("api/metadata_service.py") and name == HANDLER.rsplit(".", 1)[-1]
    )
    summary = ProfileSummary("cProfile", backend, bundles)
    if handler <= 0:
        return summary
    for watch in WATCHED:
        spent = sum(
            tot if watch.self_only else cum
            for filename, name, tot, cum in entries
            if watch.matches(filename, name)
        )
        summary.shares.append((watch.label, spent / handler))
    by_self = sorted(entries, key=lambda e: e[2], reverse=True)[:12]
    summary.top_self = [
        (f"{name} ({_short(filename)})", tot / handler) for filename, name, tot, _ in by_self
    ]
    return summary


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{REPO_ROOT}/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
