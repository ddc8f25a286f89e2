"""E and M: ApplyBundle end to end against a server process, on SQLite and PostgreSQL.

Every repetition gets a fresh database and a fresh server process, creates the
benchmark schema, then applies all records in bundles (see `bench.loader`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import workload
from .loader import BundleRun, apply_with_client, summarise_ms
from .pg import Cluster
from .profiling import (
    ProfileSummary,
    py_spy_path,
    py_spy_recording,
    summarise_cprofile,
    summarise_py_spy,
)
from .rawsqlite import remove_sqlite_files
from .server import ServerProcess, run_metareg, running_server
from .stats import median, percentile

# A function that yields a fresh, migrated database URL for one repetition.
DatabaseFactory = Callable[[str], AbstractContextManager[str]]


# "json": the Python client's Bundle (the JSON record form, pipelined);
# "typed": typed requests built with the raw stubs (bench.loader.apply_bundles).
FORMS = ("json", "typed")


@dataclass
class EndToEndResult:
    backend: str
    runs: list[BundleRun] = field(default_factory=list)
    skipped: str = ""
    form: str = "json"

    @property
    def rate(self) -> float:
        return median([r.rate for r in self.runs])

    def latency(self, fraction: float, *, server: bool = False) -> float:
        """The median over repetitions of each repetition's latency percentile."""
        return median(
            [percentile(r.server_ms if server else r.latencies_ms, fraction) for r in self.runs]
        )

    @property
    def server_growth(self) -> float:
        """Median over repetitions of BundleRun.server_growth."""
        return median([r.server_growth() for r in self.runs])

    @property
    def spread(self) -> float:
        rates = [r.rate for r in self.runs]
        return (max(rates) - min(rates)) / self.rate if rates else 0.0

    def to_json(self) -> dict[str, object]:
        if self.skipped:
            return {"backend": self.backend, "skipped": self.skipped}
        return {
            "backend": self.backend,
            "form": self.form,
            "records_per_second_median": self.rate,
            "latency_ms_p50_median": self.latency(0.50),
            "latency_ms_p99_median": self.latency(0.99),
            "server_handler_ms_p50_median": self.latency(0.50, server=True),
            "server_handler_ms_p99_median": self.latency(0.99, server=True),
            "server_handler_slowest10_over_first10": self.server_growth,
            "all_latencies_ms": summarise_ms([x for r in self.runs for x in r.latencies_ms]),
            "repetitions": [r.to_json() for r in self.runs],
        }


@dataclass
class MemoryResult:
    bundles: int
    rss_after_start_bytes: int
    run: BundleRun
    form: str = "json"

    @property
    def peak_rss_bytes(self) -> int:
        return self.run.peak_rss_bytes

    def to_json(self) -> dict[str, object]:
        return {
            "form": self.form,
            "bundles": self.bundles,
            "records": self.run.records,
            "embedding_size": workload.EMBEDDING_SIZE,
            "server_rss_after_start_bytes": self.rss_after_start_bytes,
            "server_peak_rss_bytes": self.peak_rss_bytes,
            "run": self.run.to_json(),
        }


def load_through(
    server: ServerProcess, records: Sequence[workload.Record], bundle_size: int, form: str
) -> BundleRun:
    """Create the schema, apply every record, and attach the server's own view of it."""
    server.create_schema()
    run = _apply(server, records, bundle_size, form)
    run.server_ms = server.logged_durations_ms()
    run.peak_rss_bytes = server.peak_rss_bytes()
    return run


def _apply(
    server: ServerProcess, records: Sequence[workload.Record], bundle_size: int, form: str
) -> BundleRun:
    if form == "json":
        if bundle_size != 1000:
            raise ValueError("the Python client sends 1000 updates per request")
        return apply_with_client(f"127.0.0.1:{server.port}", records)
    return server.apply(workload.chunks(records, bundle_size))


# --- fresh databases ---------------------------------------------------------------


def sqlite_databases(workdir: Path) -> DatabaseFactory:
    """Fresh SQLite files; the server migrates a new file itself when it starts."""

    @contextmanager
    def fresh(name: str) -> Iterator[str]:
        path = workdir / f"{name}.db"
        remove_sqlite_files(path)
        try:
            yield f"sqlite:///{path}"
        finally:
            remove_sqlite_files(path)

    return fresh


def postgres_databases(cluster: Cluster) -> DatabaseFactory:
    """Fresh PostgreSQL databases, migrated with `metareg db upgrade`, dropped afterwards."""

    @contextmanager
    def fresh(name: str) -> Iterator[str]:
        with cluster.database(name.replace("-", "_")) as url:
            run_metareg("db", "upgrade", "--database-url", url)
            yield url

    return fresh


# --- the measurements ------------------------------------------------------------


def measure_end_to_end(
    backend: str,
    databases: DatabaseFactory,
    records: Sequence[workload.Record],
    workdir: Path,
    *,
    repeats: int,
    bundle_size: int,
    form: str = "json",
) -> EndToEndResult:
    result = EndToEndResult(backend, form=form)
    for repetition in range(repeats):
        name = f"e-{backend}-{form}-{repetition}"
        with databases(name) as url, running_server(url, workdir, name=name) as server:
            result.runs.append(load_through(server, records, bundle_size, form))
    return result


def measure_memory(
    databases: DatabaseFactory,
    records: Sequence[workload.Record],
    workdir: Path,
    bundle_size: int,
    form: str = "json",
) -> MemoryResult:
    name = f"m-sqlite-{form}"
    with databases(name) as url, running_server(url, workdir, name=name) as server:
        server.create_schema()
        after_start = server.peak_rss_bytes()
        run = _apply(server, records, bundle_size, form)
        run.server_ms = server.logged_durations_ms()
        run.peak_rss_bytes = server.peak_rss_bytes()
    return MemoryResult(len(run.latencies_ms), after_start, run, form)


def profile_server(
    backend: str,
    databases: DatabaseFactory,
    records: Sequence[workload.Record],
    workdir: Path,
    bundle_size: int,
    *,
    tool: str = "auto",
) -> ProfileSummary:
    """Apply `records` once more (JSON form) to a profiled server and summarise its time.

    `tool` is "py-spy", "cprofile" or "auto" (py-spy when it is installed).
    """
    bundles = -(-len(records) // bundle_size)
    name = f"profile-{backend}"
    if tool == "py-spy" or (tool == "auto" and py_spy_path() is not None):
        raw = workdir / f"{name}.txt"
        with databases(name) as url, running_server(url, workdir, name=name) as server:
            server.create_schema()
            with py_spy_recording(server.pid, raw):
                _apply(server, records, bundle_size, "json")
        return summarise_py_spy(raw, backend, bundles)
    output = workdir / f"{name}.prof"
    with (
        databases(name) as url,
        running_server(url, workdir, name=name, profile_to=output) as server,
    ):
        server.create_schema()
        _apply(server, records, bundle_size, "json")
    return summarise_cprofile(output, backend, bundles)
