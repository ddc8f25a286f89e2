"""The metadata benchmark: validation (V), end-to-end ApplyBundle (E) and server memory (M).

Run from the repository root:

    .venv/bin/python -m bench.metadata                  # 100,000 records, about 5 minutes
    .venv/bin/python -m bench.metadata --records 5000   # a quick run

It prints one table (each figure, its target and whether it was met), a
profile of the server for every missed end-to-end target, and writes every
measurement to bench/results/metadata-<time>.json (and metadata-latest.json).
Timings are medians of repeated runs; the Range column is (slowest - fastest)
/ median over those repetitions. Compare figures as ratios within one run.

Rows:
  V  in-process validation of the workload (bench.workload): metareg's
     CompiledValidator.check on decoded values; the typed form from
     MetadataUpdate messages (update_from_proto + check_update); the JSON record
     form from serialized ApplyBundleRequest bytes, through the compiled fast
     path and through the generic decoder + full validator alone;
     fastjsonschema and jsonschema (Draft 2020-12, FormatChecker, all errors)
     on metareg's exported JSON Schema. jsonschema is timed on the first
     --jsonschema-subset records only, and the ratio against it uses metareg
     on that same subset.
  E  ApplyBundle over loopback gRPC into a `metareg serve` process (fresh
     database each repetition), client and request building in this process:
     "Bundle, JSON form" is the Python client's Bundle (client.bundle, which
     sends the JSON record form with one request in flight while it builds the
     next); "typed stubs" builds typed requests with the raw stubs
     (bench.loader). Sustained records/s, client-observed latency per bundle,
     the handler time the server logged, and how much slower the slowest 10
     consecutive bundles were than the first 10. On SQLite also the raw
     sqlite3.executemany ceiling (bench.rawsqlite) and the ratio to it. On
     PostgreSQL a throwaway durable cluster (tests/pgcluster.py). The serial
     bound is the rate if a bundle cost only its JSON decode + validate (the V
     row) followed by the raw write, with gRPC, the client, reading stored
     records, planning and results all free.
  M  peak RSS (VmHWM) of a server process applying bundles whose records all
     carry a 512-d embedding, on SQLite, in both forms.

After the table: the CPU of each stage of ApplyBundle in process (bench.stages).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import workload
from .endtoend import (
    FORMS,
    EndToEndResult,
    MemoryResult,
    measure_end_to_end,
    measure_memory,
    postgres_databases,
    profile_server,
    sqlite_databases,
)
from .machine import BusyProcess, busy_processes
from .pg import PostgresUnavailable, postgres_cluster
from .profiling import ProfileSummary
from .rawsqlite import measure_raw_ceiling, prepare_bundles
from .report import (
    Row,
    Target,
    arguments,
    environment,
    render_profile,
    render_table,
    write_results,
)
from .server import REPO_ROOT
from .stages import StageTimes, measure_stages
from .stages import render as render_stages
from .stats import Timing
from .validation import FASTJSONSCHEMA_NOTE, ValidationResults, measure_validation

MIB = 1024 * 1024
TARGET_VS_JSONSCHEMA = Target(">=", 50.0)
TARGET_VS_FASTJSONSCHEMA = Target(">=", 2.0)
TARGET_JSON_DECODE = Target(">=", 125_000.0)
TARGET_SQLITE_RATE = Target(">=", 50_000.0)
TARGET_VS_RAW = Target(">=", 0.35)
TARGET_SQLITE_P99 = Target("<=", 35.0)
TARGET_POSTGRES_RATE = Target(">=", 30_000.0)
TARGET_TYPED_RATE = Target(">=", 30_000.0)
TARGET_PEAK_RSS = Target("<=", 400.0)


@dataclass
class Results:
    validation: ValidationResults
    stages: StageTimes
    sqlite: EndToEndResult
    sqlite_typed: EndToEndResult
    raw: Timing
    postgres: EndToEndResult
    postgres_typed: EndToEndResult
    memory: MemoryResult
    memory_typed: MemoryResult
    profiles: list[ProfileSummary] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metadata", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=100_000, help="workload size")
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--bundle-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of in-process timings")
    parser.add_argument("--e-repeats", type=int, default=3, help="repetitions of each E run")
    parser.add_argument(
        "--jsonschema-subset", type=int, default=5000, help="records timed with jsonschema"
    )
    parser.add_argument(
        "--memory-bundles",
        type=int,
        default=None,
        help="M: bundles of records that all carry an embedding "
        "[default: 100, fewer when --records is under 100 bundles]",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile the server after an E run (auto: only when its targets are missed)",
    )
    parser.add_argument(
        "--profiler",
        choices=("auto", "py-spy", "cprofile"),
        default="auto",
        help="auto: py-spy if installed (not a project dependency), else cProfile in the server",
    )
    parser.add_argument(
        "--profile-records", type=int, default=30_000, help="records applied while profiling"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wants_profile(mode: str, missed: bool) -> bool:
    return mode == "always" or (mode == "auto" and missed)


def sqlite_missed(result: EndToEndResult, raw: Timing) -> bool:
    return not (
        TARGET_SQLITE_RATE.met(result.rate)
        and TARGET_VS_RAW.met(result.rate / raw.rate)
        and TARGET_SQLITE_P99.met(result.latency(0.99))
    )


def run_postgres(
    args: argparse.Namespace, records: Sequence[workload.Record], workdir: Path
) -> tuple[EndToEndResult, EndToEndResult, ProfileSummary | None]:
    if args.skip_postgres:
        skipped = "--skip-postgres"
        return (EndToEndResult("postgresql", skipped=skipped),
                EndToEndResult("postgresql", skipped=skipped, form="typed"), None)  # fmt: skip
    try:
        with postgres_cluster(durable=True) as cluster:
            databases = postgres_databases(cluster)
            runs = []
            for form in FORMS:
                say(f"E: PostgreSQL (durable), {form}, {args.e_repeats} x {len(records):,}")
                runs.append(measure_end_to_end(
                    "postgresql", databases, records, workdir, repeats=args.e_repeats,
                    bundle_size=args.bundle_size, form=form,
                ))  # fmt: skip
            profile = None
            if wants_profile(args.profile, not TARGET_POSTGRES_RATE.met(runs[0].rate)):
                say("profiling the server on PostgreSQL")
                profile = profile_server(
                    "postgresql",
                    databases,
                    records[: args.profile_records],
                    workdir,
                    args.bundle_size,
                    tool=args.profiler,
                )
            return runs[0], runs[1], profile
    except PostgresUnavailable as error:
        return (EndToEndResult("postgresql", skipped=str(error)),
                EndToEndResult("postgresql", skipped=str(error), form="typed"), None)  # fmt: skip


def run(args: argparse.Namespace, workdir: Path) -> Results:
    say(f"generating {args.records:,} records (seed {args.seed})")
    records = workload.generate(args.records, seed=args.seed)

    say(f"V: validators, {args.repeats} repetitions")
    validation = measure_validation(
        records,
        subset=min(args.jsonschema_subset, len(records)),
        repeats=args.repeats,
        subset_repeats=max(1, min(args.repeats, 3)),
    )
    say("stages of ApplyBundle, in process")
    stage_records = records[: min(len(records), args.profile_records)]
    stages = measure_stages(list(workload.chunks(stage_records, args.bundle_size)), workdir)

    sqlite = sqlite_databases(workdir)
    e_sqlite = []
    for form in FORMS:
        say(f"E: SQLite, {form}, {args.e_repeats} x {len(records):,} records")
        e_sqlite.append(measure_end_to_end(
            "sqlite", sqlite, records, workdir, repeats=args.e_repeats,
            bundle_size=args.bundle_size, form=form,
        ))  # fmt: skip
    say("E: raw sqlite3.executemany ceiling")
    raw = measure_raw_ceiling(
        prepare_bundles(records, args.bundle_size), workdir, max(args.e_repeats, 3)
    )
    profiles: list[ProfileSummary] = []
    if wants_profile(args.profile, sqlite_missed(e_sqlite[0], raw)):
        say("profiling the server on SQLite")
        profiles.append(
            profile_server(
                "sqlite",
                sqlite,
                records[: args.profile_records],
                workdir,
                args.bundle_size,
                tool=args.profiler,
            )
        )

    e_postgres, e_postgres_typed, pg_profile = run_postgres(args, records, workdir)
    if pg_profile is not None:
        profiles.append(pg_profile)

    bundles = args.memory_bundles or max(1, min(100, len(records) // args.bundle_size))
    count = bundles * args.bundle_size
    heavy = workload.generate(count, seed=args.seed + 1, embedding_share=1.0)
    memory = []
    for form in FORMS:
        say(f"M: {bundles} bundles of {args.bundle_size} records with embeddings, {form}")
        memory.append(measure_memory(sqlite, heavy, workdir, args.bundle_size, form))
    return Results(validation, stages, e_sqlite[0], e_sqlite[1], raw, e_postgres,
                   e_postgres_typed, memory[0], memory[1], profiles)  # fmt: skip


def validation_rows(v: ValidationResults) -> list[Row]:
    n, k = f"{v.records:,}", f"{v.subset:,}"
    return [
        Row("V.metareg", f"V  metareg CompiledValidator.check, decoded ({n})",
            v.metareg.rate, "rec/s", spread=v.metareg.spread),
        Row("V.metareg_from_proto", f"V  typed: decode from proto + validate ({n})",
            v.decode_and_check.rate, "rec/s", spread=v.decode_and_check.spread),
        Row("V.json_fast", f"V  JSON: request bytes, compiled fast path ({n})",
            v.json_fast.rate, "rec/s", TARGET_JSON_DECODE, spread=v.json_fast.spread),
        Row("V.json_generic", f"V  JSON: request bytes, generic decoder + full validator ({n})",
            v.json_generic.rate, "rec/s", spread=v.json_generic.spread),
        Row("V.fastjsonschema", f"V  fastjsonschema ({n})",
            v.fastjsonschema.rate, "rec/s", spread=v.fastjsonschema.spread),
        Row("V.metareg_subset", f"V  metareg CompiledValidator.check (first {k})",
            v.metareg_subset.rate, "rec/s", spread=v.metareg_subset.spread),
        Row("V.jsonschema", f"V  jsonschema Draft2020-12 + formats (first {k})",
            v.jsonschema_subset.rate, "rec/s", spread=v.jsonschema_subset.spread),
        Row("V.vs_jsonschema", f"V  metareg / jsonschema (same {k})",
            v.vs_jsonschema, "x", TARGET_VS_JSONSCHEMA),
        Row("V.vs_fastjsonschema", f"V  metareg / fastjsonschema (same {n})",
            v.vs_fastjsonschema, "x", TARGET_VS_FASTJSONSCHEMA),
    ]  # fmt: skip


_FORM_NAMES = {"json": "Bundle, JSON form", "typed": "typed stubs"}


def end_to_end_rows(
    e: EndToEndResult, raw: Timing | None, target: Target, p99: Target | None = None
) -> list[Row]:
    name = ("SQLite" if e.backend == "sqlite" else "PostgreSQL") + f" {_FORM_NAMES[e.form]}"
    key = f"E.{e.backend}.{e.form}"
    if e.skipped:
        return [Row(f"{key}.rate", f"E  {name}: skipped ({e.skipped})"[:90],
                    None, "rec/s", target)]  # fmt: skip
    records = e.runs[0].records
    rows = [
        Row(f"{key}.rate", f"E  {name}: ApplyBundle sustained ({records:,})",
            e.rate, "rec/s", target, spread=e.spread),
        Row(f"{key}.p50", f"E  {name}: latency per bundle, p50",
            e.latency(0.50), "ms"),
        Row(f"{key}.p99", f"E  {name}: latency per bundle, p99",
            e.latency(0.99), "ms", p99),
        Row(f"{key}.server_p50", f"E  {name}: server handler time, p50 (log)",
            e.latency(0.50, server=True), "ms"),
        Row(f"{key}.server_p99", f"E  {name}: server handler time, p99 (log)",
            e.latency(0.99, server=True), "ms"),
        Row(f"{key}.slowdown", f"E  {name}: handler time, slowest 10 bundles / first 10",
            e.server_growth, "x"),
    ]  # fmt: skip
    if raw is not None:
        rows += [
            Row(f"{key}.vs_raw", f"E  {name} / raw ceiling",
                e.rate / raw.rate, "x", TARGET_VS_RAW if e.form == "json" else None),
        ]  # fmt: skip
    return rows


def raw_rows(raw: Timing, v: ValidationResults) -> list[Row]:
    """The raw ceiling, and what E could reach if a record cost nothing but its decode +
    validate (the JSON fast path, the V row) and the raw write."""
    bound = 1.0 / (1.0 / v.json_fast.rate + 1.0 / raw.rate)
    return [
        Row("E.raw_sqlite", f"E  raw ceiling: sqlite3.executemany ({raw.items:,})",
            raw.rate, "rec/s", spread=raw.spread),
        Row("E.serial_bound", "E  serial bound: JSON decode + validate, then the raw write",
            bound, "rec/s"),
        Row("E.serial_bound_vs_raw", "E  serial bound / raw ceiling",
            bound / raw.rate, "x"),
    ]  # fmt: skip


def memory_rows(m: MemoryResult) -> list[Row]:
    form = _FORM_NAMES[m.form]
    return [
        Row(f"M.{m.form}.peak_rss",
            f"M  peak server RSS (VmHWM), {m.bundles} bundles, all with embedding, {form}",
            m.peak_rss_bytes / MIB, "MiB", TARGET_PEAK_RSS),
        Row(f"M.{m.form}.rss_after_start", "M  server RSS after start (VmHWM before the bundles)",
            m.rss_after_start_bytes / MIB, "MiB"),
        Row(f"M.{m.form}.rate", f"M  ApplyBundle sustained, bundles with embeddings, {form}",
            m.run.rate, "rec/s"),
    ]  # fmt: skip


def table_rows(results: Results) -> list[Row]:
    return [
        *validation_rows(results.validation),
        *end_to_end_rows(results.sqlite, results.raw, TARGET_SQLITE_RATE, TARGET_SQLITE_P99),
        *end_to_end_rows(results.sqlite_typed, results.raw, TARGET_TYPED_RATE),
        *raw_rows(results.raw, results.validation),
        *end_to_end_rows(results.postgres, None, TARGET_POSTGRES_RATE),
        *end_to_end_rows(results.postgres_typed, None, TARGET_TYPED_RATE),
        *memory_rows(results.memory),
        *memory_rows(results.memory_typed),
    ]


def describe_load(moment: str, busy: list[BusyProcess]) -> str:
    if not busy:
        return f"{moment}: no other busy process"
    return f"{moment}: " + "; ".join(p.describe() for p in busy)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    busy_before = busy_processes()
    with tempfile.TemporaryDirectory(prefix="metareg-bench-") as tmp:
        results = run(args, Path(tmp))
    busy_after = busy_processes()
    rows = table_rows(results)
    v = results.validation
    print(
        f"\nmetareg metadata benchmark: {args.records:,} records (seed {args.seed}), "
        f"{v.subset_embeddings:,} of the first {v.subset:,} and ~10% overall with a "
        f"{workload.EMBEDDING_SIZE}-d embedding; bundles of {args.bundle_size}; "
        f"{environment()['cpus']} CPUs"
    )
    print(render_table(rows))
    print(f"fastjsonschema: {FASTJSONSCHEMA_NOTE}")
    if busy_before or busy_after:
        print("WARNING: other processes used the CPUs, so these figures are noisier than usual")
        print(f"  {describe_load('before the run', busy_before)}")
        print(f"  {describe_load('after the run', busy_after)}")
    print()
    print(render_stages(results.stages, args.bundle_size))
    for profile in results.profiles:
        print()
        print(render_profile(profile))
    payload: dict[str, object] = {
        "benchmark": "metadata",
        "arguments": arguments(args),
        "environment": environment(),
        "other_busy_processes": {
            "before": [vars(p) for p in busy_before],
            "after": [vars(p) for p in busy_after],
        },
        "elapsed_seconds": time.perf_counter() - started,
        "table": [row.to_json() for row in rows],
        "validation": results.validation.to_json(),
        "stages": results.stages.to_json(),
        "end_to_end": {
            "sqlite": results.sqlite.to_json(),
            "sqlite_typed": results.sqlite_typed.to_json(),
            "raw_sqlite_ceiling": results.raw.to_json(),
            "postgresql": results.postgres.to_json(),
            "postgresql_typed": results.postgres_typed.to_json(),
        },
        "memory": results.memory.to_json(),
        "memory_typed": results.memory_typed.to_json(),
        "profiles": [p.to_json() for p in results.profiles],
    }
    path = write_results(args.results_dir, payload)
    print(f"\nresults: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    say(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
