"""The storm benchmark: what a burst of huge requests and a crowd of slow scans do to a
server, with its limits on and with them lifted, in one run.

    .venv/bin/python -m bench.storm                 # about 6 minutes
    .venv/bin/python -m bench.storm --records 50000 # a quick run

Burst: 16 concurrent ValidateMetadata requests of 60 MB each (JSON records of long text);
the server's peak RSS (VmHWM), its RSS 15 s after the burst, and how many calls were
refused. Scans: 48 client threads each call QueryMetadata with a filter on a key that
is not indexed (a scan of every record) in a loop, while another thread times GetSchema;
GetSchema's p50/p99 latency, its worst, and the scans answered and refused. "Limits
off" is the same server with the caps lifted out of reach (64 data calls, 100,000 calls
and 64 GiB in flight).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import msgspec

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2, schema_registry_pb2_grpc

from . import workload
from .endtoend import sqlite_databases
from .loader import apply_with_client
from .report import Row, arguments, environment, render_table, write_results
from .server import CHANNEL_OPTIONS, REPO_ROOT, ServerProcess, read_status_kib, running_server
from .stats import percentile

MIB = 1024 * 1024
LIMITS_OFF = {
    "METAREG_MAX_WORKERS": "64",
    "METAREG_MAX_CALLS_IN_FLIGHT": "100000",
    "METAREG_MAX_REQUEST_BYTES_IN_FLIGHT": str(64 * 1024 * MIB),
}


@dataclass
class BurstResult:
    peak_rss_mib: float
    settled_rss_mib: float
    before_rss_mib: float
    codes: dict[str, int]


@dataclass
class ScanResult:
    get_schema_ms: list[float] = field(default_factory=list)
    scans: dict[str, int] = field(default_factory=dict)

    def latency(self, fraction: float) -> float:
        return percentile(self.get_schema_ms, fraction)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def burst(server: ServerProcess, size: int, concurrency: int, settle: float) -> BurstResult:
    text = "x" * (size // 1000)
    records = [{"data_unit_id": f"u{i}", "metadata": {"notes": text}} for i in range(1000)]
    request = mpb.ValidateMetadataRequest(
        schema=workload.SCHEMA_NAME, records_json=msgspec.json.encode(records)
    )
    before = read_status_kib(server.pid, "VmRSS") / 1024
    codes: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(concurrency)

    def send() -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[
            *CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])  # fmt: skip
        stub = metadata_pb2_grpc.MetadataServiceStub(channel)
        start.wait()
        try:
            stub.ValidateMetadata(request, timeout=300)
            code = "OK"
        except grpc.RpcError as error:
            code = error.code().name
        finally:
            channel.close()
        with lock:
            codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=send) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak = server.peak_rss_bytes() / MIB
    time.sleep(settle)
    return BurstResult(peak, server.rss_bytes() / MIB, before, codes)


def scans(server: ServerProcess, clients: int, seconds: float) -> ScanResult:
    result = ScanResult()
    stop = threading.Event()
    lock = threading.Lock()
    # notes is not indexed: each call reads every record of the schema.
    query = mpb.QueryMetadataRequest(schema=workload.SCHEMA_NAME, filter='notes ~ "no such"')

    def scan() -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS)
        stub = metadata_pb2_grpc.MetadataServiceStub(channel)
        while not stop.is_set():
            try:
                stub.QueryMetadata(query, timeout=120)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
                time.sleep(0.05)  # a refused client backs off a little, as it should
            with lock:
                result.scans[code] = result.scans.get(code, 0) + 1
        channel.close()

    def probe() -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS)
        registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
        request = schema_registry_pb2.GetSchemaRequest(name=workload.SCHEMA_NAME)
        while not stop.is_set():
            started = time.perf_counter()
            with contextlib.suppress(grpc.RpcError):  # timed whatever it ends with
                registry.GetSchema(request, timeout=120)
            result.get_schema_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
        channel.close()

    threads = [threading.Thread(target=scan) for _ in range(clients)]
    threads.append(threading.Thread(target=probe))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return result


def run_one(
    args: argparse.Namespace, workdir: Path, name: str, env: dict[str, str]
) -> tuple[BurstResult, ScanResult]:
    databases = sqlite_databases(workdir)
    with (
        databases(f"storm-{name}") as url,
        running_server(url, workdir, name=f"storm-{name}", extra_env=env) as server,
    ):
        server.create_schema()
        say(f"{name}: loading {args.records:,} records")
        apply_with_client(f"127.0.0.1:{server.port}", workload.generate(args.records))
        say(f"{name}: {args.burst} concurrent requests of {args.size_mb} MB")
        burst_result = burst(server, args.size_mb * MIB, args.burst, args.settle)
        say(f"{name}: {args.scanners} scanning clients for {args.seconds:g} s")
        scan_result = scans(server, args.scanners, args.seconds)
    return burst_result, scan_result


def rows(results: dict[str, tuple[BurstResult, ScanResult]], args: argparse.Namespace
         ) -> list[Row]:  # fmt: skip
    table: list[Row] = []
    for name, (b, s) in results.items():
        table += [
            Row(f"{name}.burst.peak", f"{name}: burst {args.burst} x {args.size_mb} MB, peak RSS",
                b.peak_rss_mib, "MiB"),
            Row(f"{name}.burst.settled",
                f"{name}: RSS {args.settle:g} s after the burst (before: {b.before_rss_mib:.0f})",
                b.settled_rss_mib, "MiB"),
            Row(f"{name}.burst.codes", f"{name}: burst outcomes {b.codes}"[:90], None, ""),
            Row(f"{name}.scan.p50", f"{name}: GetSchema during {args.scanners} scans, p50",
                s.latency(0.50), "ms"),
            Row(f"{name}.scan.p99", f"{name}: GetSchema during {args.scanners} scans, p99",
                s.latency(0.99), "ms"),
            Row(f"{name}.scan.max", f"{name}: GetSchema during the scans, worst",
                max(s.get_schema_ms, default=float("nan")), "ms"),
            Row(f"{name}.scan.codes", f"{name}: scans {s.scans}"[:90], None, ""),
        ]  # fmt: skip
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="records scanned")
    parser.add_argument("--burst", type=int, default=16)
    parser.add_argument("--size-mb", type=int, default=60)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--scanners", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: dict[str, tuple[BurstResult, ScanResult]] = {}
    with tempfile.TemporaryDirectory(prefix="metareg-storm-") as tmp:
        for name, env in (("limits on", {}), ("limits off", LIMITS_OFF)):
            results[name] = run_one(args, Path(tmp), name, env)
    table = rows(results, args)
    print(f"\nmetareg storm benchmark: {environment()['cpus']} CPUs")
    print(render_table(table))
    payload: dict[str, object] = {
        "benchmark": "storm",
        "arguments": arguments(args),
        "environment": environment(),
        "elapsed_seconds": time.perf_counter() - started,
        "table": [row.to_json() for row in table],
        "get_schema_ms": {name: r[1].get_schema_ms for name, r in results.items()},
    }
    path = write_results(args.results_dir, payload, name="storm")
    print(f"\nresults: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    say(f"done in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
