"""Build the gRPC server (create_server) and run it until SIGTERM (serve)."""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from datetime import timedelta
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from metareg.v1 import (
    metadata_pb2,
    metadata_pb2_grpc,
    schema_registry_pb2,
    schema_registry_pb2_grpc,
)

from ..api.metadata_service import MetadataServicer
from ..api.schema_registry import SchemaRegistryServicer
from ..service.access import AccessService
from ..service.audit import AuditService
from ..service.cache import SchemaCache
from ..service.common import Clock, utc_now
from ..service.metadata import MetadataService
from ..service.query import QueryService
from ..service.schemas import SchemaService
from ..storage.database import Database, DatabaseProbe
from ..storage.migrate import ensure_at_head
from . import logs, tls
from . import metrics as metrics_module
from .access import METAREG_SERVICES, AccessInterceptor, check_exposure
from .config import Config
from .dbhealth import DatabaseHealth
from .interceptors import ErrorMappingInterceptor
from .limits import Limits, LimitsInterceptor
from .metrics import Metrics
from .reflection import enable_reflection
from .telemetry import telemetry as server_telemetry
from .tracing import Tracing
from .tracing import check_environment as check_tracing

log = logging.getLogger("metareg.server")

SERVICE_NAMES = (
    schema_registry_pb2.DESCRIPTOR.services_by_name["SchemaRegistry"].full_name,
    metadata_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name,
)
# The unary methods the server registers: the only values of metrics' `method` label.
RPC_METHODS = (
    *(f"/{s.full_name}/{m.name}" for s in METAREG_SERVICES for m in s.methods),
    f"/{health.SERVICE_NAME}/Check",
)

Address = tuple[socket.AddressFamily, str]


class Server:
    """A running metareg server: the gRPC server plus the database and health it owns,
    and what else must stop with it (`closers`, called in order after the last call)."""

    def __init__(
        self,
        grpc_server: grpc.Server,
        database: Database,
        health_servicer: health.HealthServicer,
        database_health: DatabaseHealth | None = None,
        closers: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.grpc_server = grpc_server
        self.database = database
        self.health = health_servicer
        self.database_health = database_health
        self.closers = list(closers)

    def start(self) -> None:
        self.grpc_server.start()
        if self.database_health is not None:
            self.database_health.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING, finish in-flight calls within `grace`, release the database."""
        self.health.enter_graceful_shutdown()
        event: threading.Event = self.grpc_server.stop(grace)
        event.wait()
        if self.database_health is not None:
            self.database_health.stop()
        for close in self.closers:
            close()
        self.database.dispose()
        return event

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(self.grpc_server.wait_for_termination(timeout))


def create_server(
    config: Config,
    *,
    clock: Clock = utc_now,
    reuse_port: bool = False,
    metrics_endpoint: bool = True,
    tracer_provider: Any = None,
) -> tuple[Server, int]:
    """A configured, not yet started server and the port it is bound to.

    `reuse_port` lets the processes of `serve --workers N` share one port (which their
    parent holds, so it is not probed here); such a worker also leaves /metrics to its
    parent (`metrics_endpoint=False`). `tracer_provider`: an OpenTelemetry provider to
    trace into, whatever OTEL_* says (for tests); by default OTEL_* decide.
    """
    credentials = tls.server_credentials(config)  # read before anything needs releasing
    if not reuse_port:
        check_port(config.host, config.port)
    database = Database(config.database_url, pool_size=config.max_workers)
    closers: list[Callable[[], object]] = []  # what a failure below must release, in order
    try:
        ensure_at_head(database)
        access = AccessService(database, clock)
        check_exposure(config, access)
        grpc_server, database_health, port = _build(
            config, database, access, clock, reuse_port, credentials, closers,
            metrics_endpoint=metrics_endpoint, tracer_provider=tracer_provider,
        )  # fmt: skip
    except BaseException:
        for close in reversed(closers):
            close()
        database.dispose()
        raise
    return Server(grpc_server, database, database_health.servicer, database_health, closers), port


def _build(
    config: Config,
    database: Database,
    access: AccessService,
    clock: Clock,
    reuse_port: bool,
    credentials: grpc.ServerCredentials | None,
    closers: list[Callable[[], object]],
    *,
    metrics_endpoint: bool,
    tracer_provider: Any,
) -> tuple[grpc.Server, DatabaseHealth, int]:
    cache = SchemaCache()
    ttl = timedelta(hours=config.idempotency_ttl_hours)
    limits = Limits(
        max_calls=config.max_calls_in_flight,
        # Calls over records, each of which may hold a database connection for long.
        max_data_calls=config.max_workers,
        max_bytes=config.max_request_bytes_in_flight,
    )
    # Every call under the cap has a thread of its own, and two more are spare: a call
    # past the cap is refused, and a health check answered, at once, never queued.
    threads = max(config.max_workers, config.max_calls_in_flight + 2)
    json_log = config.log_format == "json"
    health_servicer = health.HealthServicer()
    probe = DatabaseProbe(database, config.health_timeout_seconds)
    closers.append(probe.close)
    database_health = DatabaseHealth(
        probe, health_servicer, ("", *SERVICE_NAMES), interval=config.health_interval_seconds
    )
    metrics = _metrics(config, database, limits, database_health, closers, metrics_endpoint)
    tracing = (
        Tracing(tracer_provider, owned=False)
        if tracer_provider is not None
        else Tracing.from_environment()
    )
    interceptors: list[grpc.ServerInterceptor] = []
    if tracing is not None:
        closers.append(tracing.shutdown)
        interceptors.append(tracing.interceptor())  # outermost: the span holds the whole call
    # Then errors become statuses (and a log line), then the limits are applied before
    # anything is parsed, then the caller is identified.
    interceptors += [
        ErrorMappingInterceptor(
            json_log=json_log,
            observer_for=metrics.observer_for if metrics is not None else None,
            on_unavailable=database_health.suspect,
        ),
        LimitsInterceptor(limits),
        AccessInterceptor(access, anonymous_anywhere=config.allow_anonymous, note_schema=json_log),
    ]
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            # Off by default: a second server could otherwise silently share the port.
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    schema_registry_pb2_grpc.add_SchemaRegistryServicer_to_server(
        SchemaRegistryServicer(SchemaService(database, cache, clock), AuditService(database)),
        grpc_server,
    )
    metadata = MetadataService(
        database, cache, clock, ttl, telemetry=server_telemetry(metrics, tracing)
    )
    metadata_pb2_grpc.add_MetadataServiceServicer_to_server(
        MetadataServicer(metadata, QueryService(metadata)), grpc_server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), grpc_server)
    address = f"{config.host}:{config.port}"
    try:
        port = (
            grpc_server.add_secure_port(address, credentials)
            if credentials is not None
            else grpc_server.add_insecure_port(address)
        )
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port} (is the port in use?)")
    return grpc_server, database_health, port


def _metrics(
    config: Config,
    database: Database,
    limits: Limits,
    database_health: DatabaseHealth,
    closers: list[Callable[[], object]],
    serve_endpoint: bool,
) -> Metrics | None:
    """The process's metrics, if on, and its /metrics endpoint unless a parent serves it."""
    if not config.metrics_port:
        return None
    registry = metrics_module.process_registry() if serve_endpoint else None
    metrics = Metrics(RPC_METHODS, schema_labels=config.metrics_schema_labels, registry=registry)
    metrics.watch(metrics.in_flight, lambda: limits.calls)
    metrics.watch(metrics.pool_in_use, database.pool_in_use)
    metrics.watch(metrics.pool_idle, database.pool_idle)
    metrics.watch(metrics.pool_max, lambda: database.max_connections)
    metrics.watch(metrics.database_up, lambda: float(database_health.up))
    closers.append(metrics.stop)
    if registry is not None:
        host = config.metrics_host or config.host
        endpoint = metrics_module.Endpoint(host, config.metrics_port, registry)
        closers.append(endpoint.close)
    metrics.start()
    return metrics


def bind_addresses(host: str) -> list[Address]:
    """The (family, address) pairs gRPC binds for `host`, e.g. both loopbacks for localhost."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    found = socket.getaddrinfo(name or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, str(sockaddr[0])) for family, _, _, _, sockaddr in found))


def bind_socket(address: Address, port: int, *, reuse_port: bool) -> socket.socket:
    family, host = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Tolerates an earlier server's connections in TIME_WAIT; a listener still refuses.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def check_port(host: str, port: int) -> None:
    """OSError naming `host:port` if a server listens there already (or it cannot be bound
    at all), found before the database is opened: a busy port must leave no new database.

    The probe is released at once; gRPC binds the port itself a moment later.
    """
    if port == 0:
        return
    try:
        addresses = bind_addresses(host)
    except OSError as error:
        raise OSError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    failures: list[OSError] = []
    for address in addresses:
        try:
            bind_socket(address, port, reuse_port=False).close()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OSError(f"cannot listen on {host}:{port} (is the port in use?)") from None
            failures.append(error)
    if failures and len(failures) == len(addresses):  # gRPC would bind none of them either
        reason = failures[0].strerror or str(failures[0])
        raise OSError(f"cannot listen on {host}:{port} ({reason})")


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a process that allocates per record.

    A bundle allocates thousands of short-lived containers, so with the default
    thresholds the cyclic collector runs many times per bundle and its full
    passes stretch the slowest bundles (p99) severalfold. Objects built at start
    are frozen out of every future pass. Records form no reference cycles, so
    memory is still freed promptly by reference counting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (in N processes with workers=N)."""
    logs.configure(config.log_level, config.log_format)
    check_tracing()  # a missing exporter: one error now, not one per worker
    if config.workers > 1:
        from .workers import serve_workers  # it builds on this module

        serve_workers(config)
        return
    server, port = create_server(config)
    tune_garbage_collector()
    server.start()
    log.info(
        "metareg listening on %s:%d%s (database %s)",
        config.host,
        port,
        tls.log_marker(config),
        server.database.url.render_as_string(hide_password=True),
    )
    drain_on_signal(server, config.shutdown_grace_seconds, (signal.SIGTERM, signal.SIGINT)).wait()
    log.info("metareg stopped")


def drain_on_signal(
    server: Server, grace: float, signals: tuple[signal.Signals, ...]
) -> threading.Event:
    """Drain `server` when one of `signals` arrives; the event is set once it has stopped."""
    stopped = threading.Event()
    draining = threading.Event()

    def shut_down(signum: int, _frame: FrameType | None) -> None:
        # Once is enough: a worker of `--workers N` may get SIGTERM both from its
        # parent and from a supervisor that signals the whole process group.
        if draining.is_set():
            return
        draining.set()
        log.info("received %s; draining for up to %.0fs", signal.Signals(signum).name, grace)

        def drain() -> None:
            server.stop(grace)
            stopped.set()

        threading.Thread(target=drain, daemon=True).start()

    for signum in signals:
        signal.signal(signum, shut_down)
    return stopped
