"""The small-calls benchmark (L): requests per second of cheap RPCs under concurrency.

Run from the repository root:

    .venv/bin/python -m bench.calls                 # about 2 minutes
    .venv/bin/python -m bench.calls --seconds 2     # a quick run

A `metareg serve` process on a fresh SQLite database holds the benchmark schema
(bench.workload). 32 client threads in this process (so client and server share
the 2 cores) call one RPC in a loop for --seconds, and the figure is calls per
second. The kinds are measured in turn, --repeats times, and each figure is the
median of its repetitions:

  health    grpc.health.v1 Check, which does no work: the floor of any call here
  schema    GetSchema of the latest version (version 0), the registry's hot read
  pinned    GetSchema of version 1
  validate  ValidateMetadata of one record, in the JSON record form
  typed     ValidateMetadata of one record, typed

L-ratio is GetSchema / health Check of the same server in the same run. With
`--workers 2` the threads use --channels separate connections (SO_REUSEPORT
balances connections, not calls), so it is measured against the one-process
server with the same connections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import msgspec
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2, schema_registry_pb2_grpc

from . import workload
from .endtoend import sqlite_databases
from .report import Row, Target, arguments, environment, render_table, write_results
from .server import CHANNEL_OPTIONS, REPO_ROOT, running_server
from .stats import median

TARGET_RPS = Target(">=", 1200.0)
TARGET_RATIO = Target(">=", 0.6)
KINDS = ("health", "schema", "pinned", "validate", "typed")

Call = Callable[[], object]


@dataclass
class Rates:
    """Calls per second of each kind, one entry per repetition."""

    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, rate: float) -> None:
        self.runs.setdefault(kind, []).append(rate)

    def rate(self, kind: str) -> float:
        return median(self.runs.get(kind, []))

    def spread(self, kind: str) -> float:
        values = self.runs.get(kind, [])
        return (max(values) - min(values)) / self.rate(kind) if values else 0.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.calls", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes of the L-workers run")
    parser.add_argument("--channels", type=int, default=8, help="connections for L-workers")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _channels(address: str, count: int) -> list[grpc.Channel]:
    """`count` channels, each on its own connection (a local subchannel pool each)."""
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    return [grpc.insecure_channel(address, options=options) for _ in range(count)]


def _calls(channel: grpc.Channel) -> dict[str, Call]:
    """One zero-argument call per kind, on `channel`."""
    health = health_pb2_grpc.HealthStub(channel)
    registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
    metadata = metadata_pb2_grpc.MetadataServiceStub(channel)
    record = workload.generate(1, embedding_share=0.0)[0]
    as_json = msgspec.json.encode([{"data_unit_id": record.data_unit_id,
                                    "metadata": record.values}])  # fmt: skip
    check = health_pb2.HealthCheckRequest(service="metareg.v1.SchemaRegistry")
    latest = schema_registry_pb2.GetSchemaRequest(name=workload.SCHEMA_NAME)
    pinned = schema_registry_pb2.GetSchemaRequest(name=workload.SCHEMA_NAME, version=1)
    validate = mpb.ValidateMetadataRequest(schema=workload.SCHEMA_NAME, records_json=as_json)
    typed = mpb.ValidateMetadataRequest(schema=workload.SCHEMA_NAME)
    typed.records.add().CopyFrom(_typed_record(record))
    return {
        "health": lambda: health.Check(check, timeout=30),
        "schema": lambda: registry.GetSchema(latest, timeout=30),
        "pinned": lambda: registry.GetSchema(pinned, timeout=30),
        "validate": lambda: _valid(metadata.ValidateMetadata(validate, timeout=30)),
        "typed": lambda: _valid(metadata.ValidateMetadata(typed, timeout=30)),
    }


def _typed_record(record: workload.Record) -> mpb.MetadataRecord:
    update = workload.update_message(record)
    return mpb.MetadataRecord(data_unit_id=update.data_unit_id, metadata=update.metadata)


def _valid(response: Any) -> None:
    if not response.ok:
        raise RuntimeError(f"the benchmark record is invalid: {response}")


def measure(calls: Sequence[Call], threads: int, seconds: float) -> float:
    """Calls per second of `threads` threads looping over their call for `seconds`.

    Thread i uses calls[i % len(calls)] (one per channel when there are several).
    """
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop(number: int) -> None:
        call = calls[number % len(calls)]
        start.wait()
        done = 0
        try:
            while not stop.is_set():
                call()
                done += 1
        except BaseException as error:  # reported below; the figure would be wrong
            failures.append(error)
        counts[number] = done

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} call(s) failed: {failures[0]!r}")
    return sum(counts) / elapsed


def run_server(
    url: str, workdir: Path, args: argparse.Namespace, *, workers: int, channels: int,
    kinds: Sequence[str], name: str,
) -> Rates:  # fmt: skip
    rates = Rates()
    with running_server(url, workdir, name=name, workers=workers) as server:
        server.create_schema()
        opened = _channels(f"127.0.0.1:{server.port}", channels)
        try:
            per_channel = [_calls(channel) for channel in opened]
            for kind in kinds:  # warm-up: connections, caches, compiled decoders
                measure([c[kind] for c in per_channel], args.threads, min(1.0, args.seconds))
            for repetition in range(args.repeats):
                for kind in kinds:
                    rate = measure([c[kind] for c in per_channel], args.threads, args.seconds)
                    rates.add(kind, rate)
                    say(f"{name} #{repetition + 1} {kind}: {rate:,.0f} calls/s")
        finally:
            for channel in opened:
                channel.close()
    return rates


def table(one: Rates, spread_one: Rates, many: Rates, args: argparse.Namespace) -> list[Row]:
    t, c, w = args.threads, args.channels, args.workers
    ratio = one.rate("schema") / one.rate("health")
    return [
        Row("L.health", f"L  health Check, {t} threads, 1 process", one.rate("health"),
            "rps", spread=one.spread("health")),
        Row("L.get_schema", f"L  GetSchema (latest), {t} threads, 1 process",
            one.rate("schema"), "rps", TARGET_RPS, spread=one.spread("schema")),
        Row("L.ratio", "L  GetSchema / health Check, same server", ratio, "x", TARGET_RATIO),
        Row("L.get_schema_pinned", "L  GetSchema (version 1)", one.rate("pinned"), "rps",
            spread=one.spread("pinned")),
        Row("L.validate_json", "L  ValidateMetadata, 1 record, JSON form",
            one.rate("validate"), "rps", spread=one.spread("validate")),
        Row("L.validate_typed", "L  ValidateMetadata, 1 record, typed form",
            one.rate("typed"), "rps", spread=one.spread("typed")),
        Row("L.get_schema_channels", f"L  GetSchema, 1 process, {c} connections",
            spread_one.rate("schema"), "rps", spread=spread_one.spread("schema")),
        Row("L.workers", f"L  GetSchema, --workers {w}, {c} connections",
            many.rate("schema"), "rps", spread=many.spread("schema")),
        Row("L.workers_health", f"L  health Check, --workers {w}, {c} connections",
            many.rate("health"), "rps", spread=many.spread("health")),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metareg-calls-") as tmp:
        workdir = Path(tmp)
        databases = sqlite_databases(workdir)
        with databases("calls-one") as url:
            say(f"L: one process, one connection, {args.threads} threads")
            one = run_server(url, workdir, args, workers=1, channels=1, kinds=KINDS, name="one")
        with databases("calls-spread") as url:
            say(f"L: one process, {args.channels} connections")
            spread_one = run_server(url, workdir, args, workers=1, channels=args.channels,
                                    kinds=("health", "schema"), name="spread")  # fmt: skip
        with databases("calls-workers") as url:
            say(f"L: --workers {args.workers}, {args.channels} connections")
            many = run_server(url, workdir, args, workers=args.workers, channels=args.channels,
                              kinds=("health", "schema"), name="workers")  # fmt: skip
    rows = table(one, spread_one, many, args)
    print(f"\nmetareg small-calls benchmark: {args.threads} client threads, {args.seconds:g} s "
          f"per figure, median of {args.repeats}; {environment()['cpus']} CPUs")  # fmt: skip
    print(render_table(rows))
    payload: dict[str, object] = {
        "benchmark": "calls",
        "arguments": arguments(args),
        "environment": environment(),
        "elapsed_seconds": time.perf_counter() - started,
        "table": [row.to_json() for row in rows],
        "runs": {"one": one.runs, "one_spread": spread_one.runs, "workers": many.runs},
    }
    path = write_results(args.results_dir, payload, name="calls")
    print(f"\nresults: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    say(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
