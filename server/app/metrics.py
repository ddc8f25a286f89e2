"""Prometheus metrics (`--metrics-port`), served at http://HOST:PORT/metrics.

Label values are bounded and never come from a request, but for the schema name:
`method` is one of the methods this server registers (a call to any other path is
answered UNIMPLEMENTED by gRPC and never counted), `code` a gRPC status name, `rule`
one of the validator's rule names, and `schema` the name of a schema a bundle was
written to, for the first METAREG_METRICS_SCHEMA_LABELS schemas (per process) and
"_other" past them (or always, with 0); a schema name never starts with "_".

With `--workers N` the workers write their metrics to files in a directory the parent
makes (prometheus-client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR), and the parent
serves one /metrics that adds up every worker's. Gauges are then sampled once a second.

prometheus_client is imported only when metrics are on: in multiprocess mode it must
first be imported after PROMETHEUS_MULTIPROC_DIR is set.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc

from ..domain.bundle import Outcome, UpdateResult
from ..service.telemetry import InvalidRecords

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

OTHER_SCHEMAS = "_other"
# Past this many distinct rule names (there are about twenty), the rest count as "_other".
MAX_RULES = 64
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip
BUNDLE_BUCKETS = (1, 10, 50, 100, 250, 500, 750, 1000)
SAMPLE_INTERVAL_S = 1.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The metrics of one server process. `registry`: where they are collected from in
    one process; None in a worker of `--workers N`, whose parent collects the files."""

    def __init__(
        self,
        methods: Iterable[str],
        *,
        schema_labels: int,
        registry: CollectorRegistry | None,
    ) -> None:
        from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
        self.multiprocess = registry is None
        if self.multiprocess:
            from prometheus_client import values

            if not getattr(values.ValueClass, "_multiprocess", False):
                raise RuntimeError(
                    f"metrics of a worker need {MULTIPROC_ENV} set before prometheus_client "
                    "is imported"
                )
        r = registry
        self.requests = Counter(
            "metareg_rpc_requests", "RPCs finished, by method and status code.",
            ["method", "code"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "metareg_rpc_duration_seconds", "Time from a call's arrival to its status.",
            ["method"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.records_written = Counter(
            "metareg_records_written",
            "Records written (created or changed) by ApplyBundle, by schema.",
            ["schema"], registry=r,
        )  # fmt: skip
        self.violations = Counter(
            "metareg_violations",
            "Rule violations found in records (ApplyBundle and ValidateMetadata), by rule.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.bundle_records = Histogram(
            "metareg_bundle_records", "Updates in each ApplyBundle that was decoded.",
            buckets=BUNDLE_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "metareg_calls_in_flight", "Calls being served, health checks aside.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "metareg_db_pool_connections_in_use", "Database connections lent to calls.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_idle = Gauge(
            "metareg_db_pool_connections_idle", "Database connections open and waiting.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_max = Gauge(
            "metareg_db_pool_connections_max", "Database connections the pools may open.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.database_up = Gauge(
            "metareg_database_up", "1 while the database answers the health probe, else 0.",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self._methods = {m: _MethodMetrics(self, m) for m in methods}
        self._schema_cap = schema_labels
        self._schemas: dict[str, Any] = {}
        self._rules: dict[str, Any] = {}
        self._other_schemas = self.records_written.labels(OTHER_SCHEMAS)
        self._other_rules = self.violations.labels("_other")
        self._lock = threading.Lock()
        self._sampled: list[tuple[Any, Callable[[], float]]] = []
        self._stopped = threading.Event()
        self._sampler: threading.Thread | None = None

    # Calls

    def observer_for(self, method: str) -> Callable[[grpc.StatusCode, float], None] | None:
        """What counts and times the calls of `method`; None for a method not registered."""
        return self._methods.get(method)

    # Use cases (through app.telemetry)

    def bundle_applied(self, schema: str, results: Sequence[UpdateResult], replayed: bool) -> None:
        self.bundle_records.observe(len(results))
        if replayed:
            return  # written by the call that committed it, counted then
        written = 0
        for result in results:
            if result.outcome is Outcome.APPLIED:
                written += 1
            elif result.problems:
                self._count_rules(result.problems)
        if written:
            self._schema_counter(schema).inc(written)

    def bundle_rejected(self, schema: str, results: Sequence[UpdateResult]) -> None:
        self.bundle_records.observe(len(results))
        for result in results:
            if result.problems:
                self._count_rules(result.problems)

    def validated(self, invalid: InvalidRecords) -> None:
        for _, _, problems in invalid:
            self._count_rules(problems)

    def _schema_counter(self, schema: str) -> Any:
        counter = self._schemas.get(schema)
        if counter is None:
            with self._lock:
                if len(self._schemas) >= self._schema_cap:
                    return self._other_schemas
                counter = self._schemas[schema] = self.records_written.labels(schema)
        return counter

    def _count_rules(self, problems: Iterable[Any]) -> None:
        for problem in problems:
            counter = self._rules.get(problem.rule)
            if counter is None:
                with self._lock:
                    if len(self._rules) >= MAX_RULES:
                        counter = self._other_rules
                    else:
                        counter = self._rules[problem.rule] = self.violations.labels(problem.rule)
            counter.inc()

    # Gauges

    def watch(self, gauge: Any, value: Callable[[], float]) -> None:
        """Have `gauge` show `value()`: at each scrape in one process, sampled in a worker."""
        if self.multiprocess:
            self._sampled.append((gauge, value))
        else:
            gauge.set_function(value)

    def start(self) -> None:
        if self._sampled and self._sampler is None:
            self._sampler = threading.Thread(target=self._sample, name="metrics", daemon=True)
            self._sampler.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)

    def _sample(self) -> None:
        while True:
            for gauge, value in self._sampled:
                gauge.set(value())
            if self._stopped.wait(SAMPLE_INTERVAL_S):
                return


class _MethodMetrics:
    """One method's duration histogram and request counters (one per status code)."""

    __slots__ = ("_codes", "_counter", "_duration", "_method")

    def __init__(self, metrics: Metrics, method: str) -> None:
        self._method = method
        self._counter = metrics.requests
        self._duration = metrics.duration.labels(method)
        self._codes: dict[grpc.StatusCode, Any] = {}

    def __call__(self, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._codes.get(code)
        if counter is None:  # a race makes the same child twice: labels() returns one
            counter = self._codes[code] = self._counter.labels(self._method, code.name)
        counter.inc()
        self._duration.observe(seconds)


class Endpoint:
    """An HTTP server of /metrics on a thread of its own."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        from prometheus_client import start_http_server

        address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            self._server, self._thread = start_http_server(
                port, addr=address or "0.0.0.0", registry=registry
            )
        except OSError as error:
            reason = "is the port in use?" if error.errno == errno.EADDRINUSE else error.strerror
            raise OSError(f"cannot serve metrics on {host}:{port} ({reason})") from None
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def process_registry() -> CollectorRegistry:
    """A registry for one server process, with the process's CPU, memory and GC metrics."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@contextmanager
def multiprocess_endpoint(host: str, port: int) -> Iterator[Endpoint]:
    """For the parent of `--workers N`, before it forks: a fresh directory for the
    workers' metric files (in PROMETHEUS_MULTIPROC_DIR, which they inherit), and /metrics
    served from all of them; the directory is removed afterwards."""
    directory = tempfile.mkdtemp(prefix="metareg-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        endpoint = Endpoint(host, port, registry)
        try:
            yield endpoint
        finally:
            endpoint.close()
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)
