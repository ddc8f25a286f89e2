"""The benchmark's bulk-loading clients: ApplyBundle over gRPC, one bundle at the server.

`apply_with_client` is what a user runs: the Python client's `Bundle`, which encodes
each update into the JSON record form as it is queued and keeps one request in flight
while it builds the next. `apply_bundles` below builds typed requests with the raw
stubs (the typed-form rows):

The client builds bundle n+1 while the server applies bundle n, then sends it
as soon as bundle n has returned. So the server always has exactly one bundle
(no lock contention between bundles, clean per-bundle latencies) and the
client's request building, which counts in the timing, overlaps with the
server's work: client and server each use one of the two cores.

Latency is measured per bundle from just before the call until its response
arrived (a done-callback). The client thread holds the GIL while building, so
the callback can be delayed by up to the interpreter's switch interval; it is
lowered to 0.5 ms during the run to keep that error small.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from metareg.client import Client
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import metadata_pb2_grpc

from . import workload
from .stats import median, percentile

SWITCH_INTERVAL_S = 0.0005
CALL_TIMEOUT_S = 300.0


class BundleFailed(RuntimeError):
    """A bundle was not applied in full: the figures would be meaningless."""


@dataclass
class BundleRun:
    """One pass of bundles through a server."""

    records: int
    wall_seconds: float
    latencies_ms: list[float]
    # Handler durations the server logged for the same calls (filled in by the caller).
    server_ms: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.wall_seconds

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.records,
            "bundles": len(self.latencies_ms),
            "wall_seconds": self.wall_seconds,
            "records_per_second": self.rate,
            "latency_ms": summarise_ms(self.latencies_ms),
            "server_handler_ms": summarise_ms(self.server_ms),
            "server_peak_rss_bytes": self.peak_rss_bytes,
            "latency_ms_each": [round(x, 2) for x in self.latencies_ms],
            "server_handler_ms_each": [round(x, 2) for x in self.server_ms],
        }

    def server_growth(self, window: int = 10) -> float:
        """Handler time of the slowest `window` consecutive bundles over the first `window`.

        Each stretch is taken at its median. Near 1 when a bundle costs about the
        same however many records are stored already; a large value flags a
        slowdown as the table grows (e.g. a bad query plan).
        """
        ms = self.server_ms
        if len(ms) < 2 * window:
            return float("nan")
        slowest = max(median(ms[i : i + window]) for i in range(len(ms) - window + 1))
        return slowest / median(ms[:window])


def summarise_ms(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "mean": sum(values) / len(values),
        "median": median(values),
    }


@dataclass
class _InFlight:
    index: int
    expected: int
    future: Any
    sent_at: float
    done: threading.Event
    done_at: list[float]

    def finish(self) -> float:
        """Wait for the response, check it applied everything; returns its latency in ms."""
        response: mpb.ApplyBundleResponse = self.future.result()
        self.done.wait()
        if response.applied_count != self.expected:
            raise BundleFailed(
                f"bundle {self.index}: {response.applied_count} of {self.expected} applied "
                f"({response.unchanged_count} unchanged, {response.rejected_count} rejected)"
            )
        return (self.done_at[0] - self.sent_at) * 1000.0


def _send(
    stub: metadata_pb2_grpc.MetadataServiceStub,
    request: mpb.ApplyBundleRequest,
    index: int,
    expected: int,
) -> _InFlight:
    done = threading.Event()
    done_at: list[float] = []

    def on_done(_future: object) -> None:
        done_at.append(time.perf_counter())
        done.set()

    sent_at = time.perf_counter()
    future = stub.ApplyBundle.future(request, timeout=CALL_TIMEOUT_S)
    future.add_done_callback(on_done)
    return _InFlight(index, expected, future, sent_at, done, done_at)


def apply_bundles(
    stub: metadata_pb2_grpc.MetadataServiceStub,
    bundles: Iterable[Sequence[workload.Record]],
    *,
    schema: str = workload.SCHEMA_NAME,
) -> BundleRun:
    """Apply every bundle (building each request is part of the timing)."""
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    latencies: list[float] = []
    records = 0
    pending: _InFlight | None = None
    try:
        started = time.perf_counter()
        for index, bundle in enumerate(bundles):
            request = workload.bundle_request(bundle, schema)
            if pending is not None:
                latencies.append(pending.finish())
            pending = _send(stub, request, index, len(bundle))
            records += len(bundle)
        if pending is not None:
            latencies.append(pending.finish())
        wall = time.perf_counter() - started
    finally:
        sys.setswitchinterval(previous_interval)
    return BundleRun(records, wall, latencies)


class _Latencies(grpc.UnaryUnaryClientInterceptor):
    """Client-observed time of each ApplyBundle call, from send to response."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        outcome = continuation(details, request)
        if details.method.endswith("/ApplyBundle"):
            outcome.result()  # blocking calls (the Bundle's) are complete already
            self.ms.append((time.perf_counter() - started) * 1000.0)
        return outcome


def apply_with_client(
    address: str, records: Sequence[workload.Record], *, schema: str = workload.SCHEMA_NAME
) -> BundleRun:
    """Apply every record with `Client.bundle` (request building counts in the timing)."""
    latencies = _Latencies()
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        with Client(address, timeout=CALL_TIMEOUT_S, interceptors=[latencies]) as client:
            started = time.perf_counter()
            with client.bundle(schema, keep_results=False) as bundle:
                for record in records:
                    bundle.update(record.data_unit_id, record.values)
            wall = time.perf_counter() - started
    finally:
        sys.setswitchinterval(previous_interval)
    applied = bundle.applied_count
    if applied != len(records):
        raise BundleFailed(f"{applied} of {len(records)} updates applied: {dict(bundle.counts)}")
    return BundleRun(len(records), wall, latencies.ms)
