"""The query benchmark (GitHub issue 5): indexed queries on 1,000,000 records.

Run from the repository root:

    .venv/bin/python -m bench.query                    # 1,000,000 records, ~7 minutes
    .venv/bin/python -m bench.query --records 100000   # a quick (or fallback) run

It prints one table (each figure, its target and whether it was met), a py-spy
profile of the server for every missed latency target, and writes every
measurement to bench/results/query-<time>.json (and query-latest.json).

For each database (SQLite, then a throwaway durable PostgreSQL cluster from
tests/pgcluster.py) a fresh `metareg serve` process gets the benchmark schema
with camera_id, quality_score, is_night and weather declared indexed (the keys
the queries use, nothing else), and the workload (bench.workload) is applied
through it over loopback gRPC, in bundles of --bundle-size (bench.loader):
that is the load throughput. On PostgreSQL, `VACUUM ANALYZE` then runs on the
database, as an operator does after a bulk load (table statistics and the
visibility map are missing until autovacuum gets to them); Q4 is measured once
before it too. Then the load's writes are flushed (SQLite
`PRAGMA wal_checkpoint(TRUNCATE)`, PostgreSQL `CHECKPOINT`, then sync), so that
the queries are not timed during the load's write-back.

Queries go through gRPC from this process to the server process. Each has
--warmups untimed runs, then --runs timed ones; latency is the client's wall
time of one call, reported as p50 and p99 (nearest rank, so with 50 runs p99 is
the slowest run but one). Every response, warm-up or timed, is checked against
the workload generator after its clock stops, so no figure can come from a
wrong answer. Targets: Q1-Q3 p50 <= 20 ms and p99 <= 60 ms; Q4 <= 300 ms,
applied to its p50 and its p99. A query so slow that its timed runs would take over
--query-budget-s gets fewer (at least 10), and its rows say SHORTENED. Other
processes' CPU use is watched before, during (the benchmark's own server and
PostgreSQL processes left out) and after the measurements, and reported.

  Q1  camera_id = "<camera>", one page (page_size 1000: every match). The
      cameras are those whose record count is closest to 100 (exactly 100 at
      1,000,000 records); each run uses the next camera of that list, so no
      timed run repeats one (the warm-ups use others). Checked: exactly the
      generator's records for that camera, every value of every record equal.
  Q2  quality_score >= 50 AND quality_score < 60, order_by quality_score, the
      first page of 100. Checked: the generator's first 100 by (score, id).
  Q3  Q1 AND is_night = true AND weather IN ("rain", "snow"), same cameras.
      Checked: exactly the generator's matches, in data_unit_id order.
  Q4  CountMetadata of quality_score < 15 (~10% of the records). Checked:
      the generator's count.
  Q5  ListValues of camera_id with a prefix, the 20 most frequent values: the
      autocomplete facet, answered from the index. Each run uses the next of 60
      prefixes "cam-0D-H" (D 0-5, H 0-9), each the prefix of 100 cameras, so about
      1% of the records (about 10,000 index entries at 1,000,000 records) per run.
      Checked: the generator's 20 most frequent cameras of that prefix with
      their counts, in order, and `more`. Target: the same as Q1-Q3 (the facet
      target of p50 <= 50 ms is looser).
  Q1 baseline  after the timed runs, UpdateSchema turns the camera_id index
      off (SetIndexed false: the server drops its entries) and Q1 runs again,
      now a scan of the schema's records: --baseline-runs timed runs after one
      warm-up, on cameras of the same list. Reported with the ratio of its p50
      to the indexed Q1 p50.
"""

from __future__ import annotations

import argparse
import collections
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb

from . import workload
from .endtoend import DatabaseFactory, postgres_databases, sqlite_databases
from .loader import BundleRun
from .machine import BusyProcess, CpuWatch, busy_processes, pids_with_command
from .metadata import describe_load, say
from .pg import PostgresUnavailable, postgres_cluster
from .profiling import ProfileSummary, Watch, py_spy_path, py_spy_recording, summarise_py_spy
from .query_answers import (
    Q2_FILTER,
    Q2_ORDER_BY,
    Q2_PAGE,
    Q3_RAIN_OR_SNOW,
    Q4_FILTER,
    Expected,
    WrongAnswer,
    check_records,
)
from .query_timing import MIN_RUNS, Latencies, RunPlan, T, finite, time_runs
from .report import (
    Row,
    Target,
    arguments,
    environment,
    render_profile,
    render_table,
    write_results,
)
from .server import REPO_ROOT, ServerProcess, running_server
from .stats import percentile

INDEXED = ("camera_id", "quality_score", "is_night", "weather")
Q1_PAGE = 1000  # the largest page: every match of a camera in one response
CALL_TIMEOUT_S = 600.0
STEAL_WARNING = 0.05

TARGET_P50 = Target("<=", 20.0)
TARGET_P99 = Target("<=", 60.0)
TARGET_COUNT = Target("<=", 300.0)
Q5_PREFIXES = tuple(f"cam-0{d}-{h}" for d in range(6) for h in range(10))
Q5_LIMIT = 20


class Queries:
    """Q1-Q4 against one server, each checked against the generator."""

    def __init__(self, server: ServerProcess, expected: Expected, watch: CpuWatch) -> None:
        self.server = server
        self.stub = server.metadata
        self.expected = expected
        self.watch = watch

    def query(self, filter_text: str, order_by: str = "", page_size: int = Q1_PAGE
              ) -> mpb.QueryMetadataResponse:  # fmt: skip
        request = mpb.QueryMetadataRequest(
            schema=workload.SCHEMA_NAME, filter=filter_text, order_by=order_by, page_size=page_size
        )
        response: mpb.QueryMetadataResponse = self.stub.QueryMetadata(
            request, timeout=CALL_TIMEOUT_S
        )
        return response

    def count(self, filter_text: str) -> int:
        request = mpb.CountMetadataRequest(schema=workload.SCHEMA_NAME, filter=filter_text)
        return int(self.stub.CountMetadata(request, timeout=CALL_TIMEOUT_S).count)

    def camera(self, run: int) -> str:
        return self.expected.cameras[run % len(self.expected.cameras)]

    @staticmethod
    def q1_filter(camera: str) -> str:
        return f'camera_id = "{camera}"'

    @staticmethod
    def q3_filter(camera: str) -> str:
        options = ", ".join(f'"{o}"' for o in Q3_RAIN_OR_SNOW)
        return f"{Queries.q1_filter(camera)} AND is_night = true AND weather IN ({options})"

    # Each query: a call taking the run number, and the check of its result.

    def q1_call(self, run: int) -> mpb.QueryMetadataResponse:
        return self.query(self.q1_filter(self.camera(run)))

    def q1_check(self, run: int, response: mpb.QueryMetadataResponse) -> None:
        camera = self.camera(run)
        check_records(response.records, self.expected.q1(camera), self.expected, f"Q1 {camera}")
        if response.next_page_token:
            raise WrongAnswer(f"Q1 {camera}: more than one page")

    def q2_call(self, run: int) -> mpb.QueryMetadataResponse:
        return self.query(Q2_FILTER, Q2_ORDER_BY, Q2_PAGE)

    def q2_check(self, run: int, response: mpb.QueryMetadataResponse) -> None:
        check_records(response.records, self.expected.q2_page, self.expected, "Q2")
        if bool(response.next_page_token) != (self.expected.q2_matches > Q2_PAGE):
            raise WrongAnswer("Q2: next_page_token does not match the number of matches")

    def q3_call(self, run: int) -> mpb.QueryMetadataResponse:
        return self.query(self.q3_filter(self.camera(run)))

    def q3_check(self, run: int, response: mpb.QueryMetadataResponse) -> None:
        camera = self.camera(run)
        check_records(response.records, self.expected.q3(camera), self.expected, f"Q3 {camera}")

    def q4_call(self, run: int) -> int:
        return self.count(Q4_FILTER)

    def q4_check(self, run: int, count: int) -> None:
        if count != self.expected.q4_count:
            raise WrongAnswer(f"Q4: count {count}, expected {self.expected.q4_count}")

    def q5_prefix(self, run: int) -> str:
        return Q5_PREFIXES[run % len(Q5_PREFIXES)]

    def q5_call(self, run: int) -> mpb.ListValuesResponse:
        request = mpb.ListValuesRequest(
            schema=workload.SCHEMA_NAME, key="camera_id", prefix=self.q5_prefix(run),
            limit=Q5_LIMIT,
        )  # fmt: skip
        response: mpb.ListValuesResponse = self.stub.ListValues(request, timeout=CALL_TIMEOUT_S)
        return response

    def q5_check(self, run: int, response: mpb.ListValuesResponse) -> None:
        prefix = self.q5_prefix(run)
        counts = sorted(
            ((-len(ids), camera) for camera, ids in self.expected.by_camera.items()
             if camera.startswith(prefix)),
        )  # fmt: skip
        wanted = [(camera, -negative) for negative, camera in counts[:Q5_LIMIT]]
        got = [(entry.value.string_value, entry.count) for entry in response.values]
        if got != wanted or response.more != (len(counts) > Q5_LIMIT):
            raise WrongAnswer(f"Q5 {prefix}: {got[:3]}... is not {wanted[:3]}...")

    def measure(self, name: str, filter_text: str, call: Callable[[int], T],
                check: Callable[[int, T], None], plan: RunPlan, *,
                method: str = "QueryMetadata", note: str = "") -> Latencies:  # fmt: skip
        logged = len(self.server.logged_durations_ms(method))
        self.watch.start()
        ms, warmups, shortened = time_runs(call, check, plan)
        busy = self.watch.busy()
        if shortened:
            say(f"{name}: {shortened}")
        server_ms = self.server.logged_durations_ms(method)[logged + warmups :]
        note = "; ".join(n for n in (note, shortened) if n)
        return Latencies(name, filter_text, warmups, ms, server_ms, note, bool(shortened), busy,
                         self.watch.steal)  # fmt: skip


# --- one database ------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    skipped: str = ""
    load: BundleRun | None = None
    commit: str = ""  # the code the server process started with (git HEAD, "+" if modified)
    load_busy: list[BusyProcess] = field(default_factory=list)
    load_steal: float = float("nan")
    settle: dict[str, object] = field(default_factory=dict)
    schema_seconds: float = 0.0
    queries: dict[str, Latencies] = field(default_factory=dict)
    vacuum_seconds: float | None = None
    autovacuum_before: list[dict[str, object]] = field(default_factory=list)
    drop_index_seconds: float = 0.0
    profiles: list[ProfileSummary] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "SQLite" if self.backend == "sqlite" else "PostgreSQL"

    def to_json(self) -> dict[str, object]:
        if self.skipped:
            return {"backend": self.backend, "skipped": self.skipped}
        return {
            "backend": self.backend,
            "server_commit": self.commit,
            "load": self.load.to_json() if self.load else None,
            "load_other_busy_processes": [vars(p) for p in self.load_busy],
            "load_cpu_steal_share": finite(self.load_steal),
            "settle_after_load": self.settle,
            "create_schema_seconds": self.schema_seconds,
            "vacuum_analyze_seconds": self.vacuum_seconds,
            "pg_stat_user_tables_before_vacuum": self.autovacuum_before,
            "set_indexed_false_seconds": self.drop_index_seconds,
            "queries": {k: v.to_json() for k, v in self.queries.items()},
            "profiles": [p.to_json() for p in self.profiles],
        }


QUERY_WATCHED: tuple[Watch, ...] = (
    Watch("plan: size each indexed conjunct (_Query.best_driver)", "service/query.py",
          "_Query.best_driver"),
    Watch("  index.count_entries", "storage/index.py", "count_entries"),
    Watch("walk the order key's index (QueryService._walk)", "service/query.py",
          "QueryService._walk"),
    Watch("  read index entries in order (index.walk)", "storage/index.py", "walk"),
    Watch("candidate ids from an index (index.ids_in_ranges)", "storage/index.py",
          "ids_in_ranges"),
    Watch("scan records in id order (records.scan_in_id_order)", "storage/records.py",
          "scan_in_id_order"),
    Watch("load candidates' values (records.load_scalars)", "storage/records.py",
          "load_scalars"),
    Watch("  decode stored JSON, SQLite (JsonText load)", "storage/types.py",
          "JsonText.result_processor.<locals>.load"),
    Watch("  decode stored JSONB, PostgreSQL (psycopg)", "psycopg/types/json.py",
          "_JsonLoader.load"),
    Watch("check the filter (evaluate.matches)", "domain/query/evaluate.py", "matches"),
    Watch("read the page's records (records.get_records)", "storage/records.py",
          "get_records"),
    Watch("build the response (convert.record_to_proto)", "api/convert.py", "record_to_proto"),
    Watch("driver execute (DefaultDialect.do_execute)", "sqlalchemy/engine/default.py",
          "DefaultDialect.do_execute"),
    Watch("waiting on PostgreSQL (psycopg Connection.wait, self)", "psycopg/connection.py",
          "Connection.wait", self_only=True),
)  # fmt: skip


def profile_query(
    server: ServerProcess,
    backend: str,
    method: str,
    call: Callable[[int], Any],
    workdir: Path,
    *,
    calls: int,
    budget_s: float,
) -> ProfileSummary | None:
    """Sample the server with py-spy while `call` runs `calls` times (or for `budget_s`)."""
    if py_spy_path() is None:
        say("py-spy not found: no profile")
        return None
    raw = workdir / f"profile-{backend}-{method}-{time.monotonic_ns()}.txt"
    done = 0
    with py_spy_recording(server.pid, raw):
        started = time.monotonic()
        while done < calls and time.monotonic() - started < budget_s:
            call(done)
            done += 1
    return summarise_py_spy(raw, backend, done, handler=f"MetadataServicer.{method}",
                            watched=QUERY_WATCHED, calls="calls")  # fmt: skip


def vacuum_analyze(url: str) -> tuple[float, list[dict[str, object]]]:
    """VACUUM ANALYZE the database; returns its seconds and the tables' state before it."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            before = [
                dict(row._mapping)
                for row in connection.execute(text(
                    "SELECT relname, n_live_tup, n_ins_since_vacuum, autovacuum_count, "
                    "autoanalyze_count, last_autovacuum::text, last_autoanalyze::text "
                    "FROM pg_stat_user_tables ORDER BY relname"
                ))
            ]  # fmt: skip
            started = time.perf_counter()
            connection.execute(text("VACUUM ANALYZE"))
            return time.perf_counter() - started, before
    finally:
        engine.dispose()


def settle(backend: str, url: str) -> dict[str, object]:
    """Let the load's writes reach the disk before the queries are timed.

    Right after the load the database may still be checkpointing (SQLite copies
    its write-ahead log into the file, PostgreSQL flushes its dirty buffers: about
    0.5 s of CHECKPOINT after 1,000,000 records) and the kernel may still be
    writing dirty pages back. This brings that forward: SQLite
    `PRAGMA wal_checkpoint(TRUNCATE)` (from this process; the server has no
    writer at this point) or PostgreSQL `CHECKPOINT`, then sync(2).
    """
    started = time.perf_counter()
    outcome: object
    if backend == "sqlite":
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)) as connection:
            outcome = list(connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text("CHECKPOINT"))
                outcome = "CHECKPOINT"
        finally:
            engine.dispose()
    checkpoint_s = time.perf_counter() - started
    os.sync()
    return {
        "checkpoint": outcome,
        "checkpoint_seconds": checkpoint_s,
        "sync_seconds": time.perf_counter() - started - checkpoint_s,
    }


def set_indexed(server: ServerProcess, key: str, indexed: bool) -> int:
    """One UpdateSchema that switches `key`'s index; returns the new version."""
    registry = server.registry
    latest = registry.GetSchema(rpb.GetSchemaRequest(name=workload.SCHEMA_NAME)).schema.version
    change = spb.SchemaChange(set_indexed=spb.SetIndexed(key=key, indexed=indexed))
    response = registry.UpdateSchema(
        rpb.UpdateSchemaRequest(
            name=workload.SCHEMA_NAME, expected_version=latest, changes=[change]
        ),
        timeout=CALL_TIMEOUT_S,
    )
    return int(response.schema.version)


def missed(latencies: Latencies, p50: Target, p99: Target) -> bool:
    return not (p50.met(latencies.p(0.50)) and p99.met(latencies.p(0.99)))


def run_backend(backend: str, databases: DatabaseFactory, records: Sequence[workload.Record],
                expected: Expected, args: argparse.Namespace, workdir: Path,
                ours: set[int] | None = None) -> BackendResult:  # fmt: skip
    """Load, then measure; `ours` are the database's own processes (not counted as noise)."""
    result = BackendResult(backend)
    name = f"q-{backend}"
    watch = CpuWatch(ours)
    result.commit = code_version()
    with databases(name) as url, running_server(url, workdir, name=name) as server:
        started = time.perf_counter()
        server.create_schema(INDEXED)
        result.schema_seconds = time.perf_counter() - started
        say(f"{result.name}: loading {len(records):,} records, indexed: {', '.join(INDEXED)}")
        watch.start()
        load = server.apply(workload.chunks(records, args.bundle_size))
        result.load_busy = watch.busy()
        result.load_steal = watch.steal
        load.server_ms = server.logged_durations_ms()
        load.peak_rss_bytes = server.peak_rss_bytes()
        result.load = load
        say(f"{result.name}: loaded at {load.rate:,.0f} records/s ({load.wall_seconds:.0f}s)")

        queries = Queries(server, expected, watch)
        plan = RunPlan(args.warmups, args.runs, args.query_budget_s)
        if backend == "postgresql":
            say("PostgreSQL: Q4 before VACUUM ANALYZE")
            before = RunPlan(args.warmups, args.before_vacuum_runs, args.query_budget_s)
            result.queries["q4_before_vacuum"] = queries.measure(
                "Q4 before VACUUM ANALYZE", Q4_FILTER, queries.q4_call, queries.q4_check,
                before, method="CountMetadata",
            )  # fmt: skip
            say("PostgreSQL: VACUUM ANALYZE")
            result.vacuum_seconds, result.autovacuum_before = vacuum_analyze(url)
        say(f"{result.name}: settling after the load (database checkpoint, then sync)")
        result.settle = settle(backend, url)

        say(f"{result.name}: Q1-Q4, {plan.warmups} warm-up + {plan.runs} timed runs each")
        camera = "<camera>"
        q1 = queries.measure("Q1", queries.q1_filter(camera), queries.q1_call, queries.q1_check,
                             plan)  # fmt: skip
        q2 = queries.measure("Q2", Q2_FILTER, queries.q2_call, queries.q2_check, plan,
                             note=f"order_by {Q2_ORDER_BY}, page_size {Q2_PAGE}")  # fmt: skip
        q3 = queries.measure("Q3", queries.q3_filter(camera), queries.q3_call, queries.q3_check,
                             plan)  # fmt: skip
        q4 = queries.measure("Q4", Q4_FILTER, queries.q4_call, queries.q4_check, plan,
                             method="CountMetadata")  # fmt: skip
        q5 = queries.measure("Q5", "", queries.q5_call, queries.q5_check, plan,
                             method="ListValues", note="camera_id, prefix cam-0D-H")  # fmt: skip
        result.queries.update(q1=q1, q2=q2, q3=q3, q4=q4, q5=q5)

        if args.profile != "never":
            missable: list[tuple[Latencies, Target, Target, str, Callable[[int], Any]]] = [
                (q1, TARGET_P50, TARGET_P99, "QueryMetadata", queries.q1_call),
                (q2, TARGET_P50, TARGET_P99, "QueryMetadata", queries.q2_call),
                (q3, TARGET_P50, TARGET_P99, "QueryMetadata", queries.q3_call),
                (q4, TARGET_COUNT, TARGET_COUNT, "CountMetadata", queries.q4_call),
                (q5, TARGET_P50, TARGET_P99, "ListValues", queries.q5_call),
            ]
            for latencies, p50, p99, method, call in missable:
                if args.profile == "always" or missed(latencies, p50, p99):
                    say(f"{result.name}: profiling {latencies.name} with py-spy")
                    summary = profile_query(server, backend, method, call, workdir,
                                            calls=args.profile_calls, budget_s=30.0)  # fmt: skip
                    if summary is not None:
                        summary.backend = f"{backend} {latencies.name}"
                        result.profiles.append(summary)

        say(f"{result.name}: turning the camera_id index off (SetIndexed false)")
        started = time.perf_counter()
        set_indexed(server, "camera_id", False)
        result.drop_index_seconds = time.perf_counter() - started
        say(f"{result.name}: Q1 baseline (scan), 1 warm-up + {args.baseline_runs} timed runs")
        result.queries["q1_baseline"] = queries.measure(
            "Q1 baseline (no index: scan)", queries.q1_filter(camera), queries.q1_call,
            queries.q1_check, RunPlan(1, args.baseline_runs),
        )  # fmt: skip
    return result


def code_version() -> str:
    """git HEAD, with "+" when server/, client/ or protos/ differ from it."""
    env = environment()
    return f"{str(env['git_commit'])[:10]}{'+' if env['git_dirty'] else ''}"


def run_postgres(records: Sequence[workload.Record], expected: Expected,
                 args: argparse.Namespace, workdir: Path) -> BackendResult:  # fmt: skip
    if args.skip_postgres:
        return BackendResult("postgresql", skipped="--skip-postgres")
    try:
        with postgres_cluster(durable=True) as cluster:
            postmaster = pids_with_command(f"-p {cluster.port} ")
            return run_backend("postgresql", postgres_databases(cluster), records, expected,
                               args, workdir, postmaster)  # fmt: skip
    except PostgresUnavailable as error:
        return BackendResult("postgresql", skipped=str(error))


# --- report ------------------------------------------------------------------------------


def latency_rows(key: str, label: str, latencies: Latencies, p50: Target, p99: Target
                 ) -> list[Row]:  # fmt: skip
    """The p50 and p99 rows of one query; the p99 row names the query only by its number."""
    runs = f" of {len(latencies.ms)} runs (SHORTENED)" if latencies.shortened else ""
    short = label.split(": ", 1)[0] + ": " + latencies.name
    return [
        Row(f"{key}.p50", f"{label}, p50{runs}", latencies.p(0.50), "ms", p50),
        Row(f"{key}.p99", f"{short}, p99{runs}", latencies.p(0.99), "ms", p99),
    ]


def backend_rows(r: BackendResult, expected: Expected, records: int) -> list[Row]:
    b = r.backend
    if r.skipped or r.load is None:
        return [Row(f"{b}.load", f"{r.name}: skipped ({r.skipped})"[:90], None, "rec/s")]
    q = r.queries
    hits = sorted({len(expected.q1(c)) for c in expected.cameras})
    hit_text = f"{hits[0]}" if len(hits) == 1 else f"{hits[0]}-{hits[-1]}"
    q3_hits = [len(expected.q3(c)) for c in expected.cameras]
    rows = [
        Row(f"{b}.load", f"{r.name}: load {records:,} records (ApplyBundle, 4 indexed keys)",
            r.load.rate, "rec/s"),
        Row(f"{b}.load_p99", f"{r.name}: load, latency per bundle, p99",
            percentile(r.load.latencies_ms, 0.99), "ms"),
    ]  # fmt: skip
    if r.vacuum_seconds is not None:
        before = q["q4_before_vacuum"]
        rows += [
            Row(f"{b}.q4_before_vacuum",
                f"{r.name}: Q4 before VACUUM ANALYZE, p50 of {len(before.ms)} runs (informative)",
                before.p(0.50), "ms"),
            Row(f"{b}.vacuum", f"{r.name}: VACUUM ANALYZE after the load",
                r.vacuum_seconds, "s"),
        ]  # fmt: skip
    q1_label = f"Q1 camera_id = <{len(expected.cameras)} cameras, {hit_text} hits each>"
    q3_label = f"Q3 Q1 AND is_night = true AND weather IN (2) [{min(q3_hits)}-{max(q3_hits)} hits]"
    rows += latency_rows(f"{b}.q1", f"{r.name}: {q1_label}", q["q1"], TARGET_P50, TARGET_P99)
    rows += latency_rows(f"{b}.q2", f"{r.name}: Q2 {Q2_FILTER} order_by, page 100", q["q2"],
                         TARGET_P50, TARGET_P99)  # fmt: skip
    rows += latency_rows(f"{b}.q3", f"{r.name}: {q3_label}", q["q3"], TARGET_P50, TARGET_P99)
    rows += latency_rows(f"{b}.q4", f"{r.name}: Q4 count {Q4_FILTER} [{expected.q4_count:,}]",
                         q["q4"], TARGET_COUNT, TARGET_COUNT)  # fmt: skip
    if "q5" in q:
        rows += latency_rows(f"{b}.q5", f"{r.name}: Q5 ListValues camera_id prefix "
                             f"<{len(Q5_PREFIXES)} prefixes of 100 cameras>, top {Q5_LIMIT}",
                             q["q5"], TARGET_P50, TARGET_P99)  # fmt: skip
    base = q.get("q1_baseline")
    if base is not None:
        rows += [
            Row(f"{b}.q1_baseline.p50",
                f"{r.name}: Q1 baseline, index off (scan), p50 of {len(base.ms)} runs",
                base.p(0.50), "ms"),
            Row(f"{b}.q1_baseline_ratio", f"{r.name}: Q1 baseline / Q1 indexed (p50)",
                base.p(0.50) / q["q1"].p(0.50), "x"),
        ]  # fmt: skip
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.query", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000,
        help="workload size; fewer than 1,000,000 is a fallback whose figures are not the "
        "issue's (Q1 then has fewer than 100 hits)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--bundle-size", type=int, default=1000)
    parser.add_argument("--warmups", type=int, default=5, help="untimed runs of each query")
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each query")
    parser.add_argument("--baseline-runs", type=int, default=5, help="timed runs of the scan")
    parser.add_argument(
        "--before-vacuum-runs", type=int, default=20,
        help="timed runs of Q4 on PostgreSQL before VACUUM ANALYZE",
    )  # fmt: skip
    parser.add_argument(
        "--profile", choices=("auto", "always", "never"), default="auto",
        help="profile the server (py-spy) for a query (auto: when it misses a target)",
    )  # fmt: skip
    parser.add_argument(
        "--query-budget-s", type=float, default=60.0,
        help=f"a query whose timed runs would take longer gets fewer (at least {MIN_RUNS}); "
        "the table says so",
    )  # fmt: skip
    parser.add_argument("--profile-calls", type=int, default=50, help="calls while profiling")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    busy: list[tuple[str, list[BusyProcess]]] = [("before the run", busy_processes())]
    start_commit = code_version()
    say(f"generating {args.records:,} records (seed {args.seed})")
    records = workload.generate(args.records, seed=args.seed)
    expected = Expected.of(records, args.warmups + args.runs)
    say(
        f"Q1 cameras: {len(expected.cameras)} with "
        f"{sorted({len(expected.q1(c)) for c in expected.cameras})} records; "
        f"Q2 matches {expected.q2_matches:,}; Q4 count {expected.q4_count:,}"
    )
    results: list[BackendResult] = []
    with tempfile.TemporaryDirectory(prefix="metareg-bench-") as tmp:
        workdir = Path(tmp)
        if args.skip_sqlite:
            results.append(BackendResult("sqlite", skipped="--skip-sqlite"))
        else:
            results.append(
                run_backend("sqlite", sqlite_databases(workdir), records, expected, args, workdir)
            )
            busy.append(("between the databases", busy_processes()))
        results.append(run_postgres(records, expected, args, workdir))
    busy.append(("after the run", busy_processes()))

    rows = [row for r in results for row in backend_rows(r, expected, args.records)]
    env = environment()
    commits = [start_commit, *(r.commit for r in results if r.commit), code_version()]
    code = " / ".join(dict.fromkeys(commits))
    fallback = "" if args.records >= 1_000_000 else " (FALLBACK: fewer records than the issue's)"
    print(
        f"\nmetareg query benchmark: {args.records:,} records{fallback} (seed {args.seed}), "
        f"loaded through `metareg serve` in bundles of {args.bundle_size}; queries over "
        f"loopback gRPC, {args.warmups} warm-up + {args.runs} timed runs each "
        f"(Q1 baseline: 1 + {args.baseline_runs}); {env['cpus']} CPUs; code {code}"
        + (" (+: server/client/protos modified)" if "+" in code else "")
    )
    print(render_table(rows))
    q1_hits = collections.Counter(len(expected.q1(c)) for c in expected.cameras)
    print(
        f"Q1/Q3 cameras: {len(expected.cameras)}, each run the next one; records per camera: "
        + ", ".join(f"{hits} ({n} cameras)" for hits, n in sorted(q1_hits.items()))
        + f"; Q2 matches {expected.q2_matches:,} (first page 100); "
        f"Q4 count {expected.q4_count:,} of {args.records:,}"
    )
    if any(r.vacuum_seconds is not None for r in results):
        print("PostgreSQL: VACUUM ANALYZE ran on the database after the load (as an operator "
              "does after a bulk load), before Q1-Q4; Q4 was also measured before it.")  # fmt: skip
    print("Before the queries: a database checkpoint and sync(2) after the load (steady state).")
    print("Every response (warm-ups included) was checked against the workload generator.")
    if len(set(commits)) > 1:
        print(
            "WARNING: the code changed during the run (git HEAD at the start / at each "
            f"server's start / at the end: {' / '.join(commits)}); each database's figures "
            "are of the code its server started with"
        )
    during = [
        (f"{r.name} {what}", found)
        for r in results
        for what, found in [("load", r.load_busy), *((q.name, q.busy) for q in r.queries.values())]
        if found
    ]
    stolen = [
        (f"{r.name} {what}", share)
        for r in results
        for what, share in [
            ("load", r.load_steal),
            *((q.name, q.steal) for q in r.queries.values()),
        ]
        if share >= STEAL_WARNING
    ]
    for moment, share in stolen:
        print(f"WARNING: during {moment}, {share:.0%} of the CPU time was stolen by other VMs")
    if any(b for _, b in busy) or during:
        print("WARNING: other processes used the CPUs, so these figures are noisier than usual")
        for moment, found in busy:
            print(f"  {describe_load(moment, found)}")
        for moment, found in during:
            print(f"  {describe_load('during ' + moment, found)}")
    else:
        print("No other process used over 10% of a CPU before, during or after the measurements.")
    for r in results:
        for profile in r.profiles:
            print()
            print(render_profile(profile))
    payload: dict[str, object] = {
        "benchmark": "query",
        "arguments": arguments(args),
        "environment": env,
        "other_busy_processes": {moment: [vars(p) for p in found] for moment, found in busy},
        "elapsed_seconds": time.perf_counter() - started,
        "indexed_keys": list(INDEXED),
        "code": {"start": start_commit, "end": commits[-1]},
        "expected": {
            "q1_cameras": {c: len(expected.q1(c)) for c in expected.cameras},
            "q3_matches": {c: len(expected.q3(c)) for c in expected.cameras},
            "q2_matches": expected.q2_matches,
            "q4_count": expected.q4_count,
        },
        "table": [row.to_json() for row in rows],
        "backends": {r.backend: r.to_json() for r in results},
    }
    path = write_results(args.results_dir, payload, name="query")
    print(f"\nresults: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    say(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
