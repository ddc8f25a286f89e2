"""OpenTelemetry traces, with the `[otel]` extra, set up by the standard OTEL_* variables.

Traces are on when OTEL_TRACES_EXPORTER names an exporter (not `none`) or an OTLP
endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the
exporter then being `otlp`), unless OTEL_SDK_DISABLED=true. Otherwise no opentelemetry
module is imported at all. Each call is a server span (opentelemetry-instrumentation-
grpc, joining the caller's trace from its `traceparent` header), and ApplyBundle's stages
are its child spans (service.telemetry). The rest is the SDK's own reading of OTEL_*:
OTEL_SERVICE_NAME (here "metareg" by default), OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, and each exporter's (OTEL_EXPORTER_OTLP_*); and
the instrumentation's OTEL_PYTHON_GRPC_EXCLUDED_SERVICES.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import Any

import grpc

log = logging.getLogger("metareg.server")

EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
EXTRA_HINT = "pip install 'metareg[otel]'"


class TracingMisconfigured(ValueError):
    """OTEL_* settings that name an exporter this installation does not have."""


def traces_wanted(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def extra_installed() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("opentelemetry.sdk", "opentelemetry.instrumentation.grpc")
    )


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The entry point names of the exporters OTEL_TRACES_EXPORTER asks for."""
    env = os.environ if environ is None else environ
    names = []
    for name in (env.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(","):
        name = name.strip()
        if name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc"
            ).strip()
            if protocol not in _OTLP_BY_PROTOCOL:
                raise TracingMisconfigured(
                    f"OTLP protocol {protocol!r} is not supported: use grpc or http/protobuf"
                )
            name = _OTLP_BY_PROTOCOL[protocol]
        if name and name != "none":
            names.append(name)
    return names


def check_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether traces will be on; TracingMisconfigured for an exporter that is not
    installed. Imports no opentelemetry module (for `serve`, before any worker starts)."""
    if not traces_wanted(environ):
        return False
    if not extra_installed():
        log.warning(
            "OTEL_* settings ask for traces, but the [otel] extra is not installed (%s): no traces",
            EXTRA_HINT,
        )
        return False
    installed = {point.name for point in entry_points(group=EXPORTER_GROUP)}
    for name in exporter_names(environ):
        if name not in installed:
            raise TracingMisconfigured(
                f"OTEL_TRACES_EXPORTER: no trace exporter {name!r} is installed "
                f"(installed: {', '.join(sorted(installed)) or 'none'})"
            )
    return True


class Tracing:
    """A tracer provider, the server interceptor that makes each call's span, and the
    stage spans inside it. `owned`: made here, so flushed and shut down with the server."""

    def __init__(self, provider: Any, *, owned: bool) -> None:
        from opentelemetry import trace
        from opentelemetry.instrumentation.grpc import filters, server_interceptor

        self.provider = provider
        self.owned = owned
        self.tracer = trace.get_tracer("metareg", tracer_provider=provider)
        # As the instrumentation's own set-up does: services named in
        # OTEL_PYTHON_GRPC_EXCLUDED_SERVICES (e.g. grpc.health.v1.Health) get no spans.
        excluded = [
            name.strip()
            for name in os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "").split(",")
            if name.strip()
        ]
        keep = (
            filters.negate(filters.any_of(*(filters.service_name(n) for n in excluded)))
            if excluded
            else None
        )
        self._interceptor = server_interceptor(tracer_provider=provider, filter_=keep)  # type: ignore[no-untyped-call]

    @classmethod
    def from_environment(cls) -> Tracing | None:
        if not check_environment():
            return None
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "metareg"}))
        provider = TracerProvider(resource=resource)
        points = {point.name: point for point in entry_points(group=EXPORTER_GROUP)}
        for name in exporter_names():
            exporter = points[name].load()()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, owned=True)

    def interceptor(self) -> grpc.ServerInterceptor:
        interceptor: grpc.ServerInterceptor = self._interceptor
        return interceptor

    def stage(self, name: str, records: int | None = None) -> AbstractContextManager[object]:
        attributes = {"metareg.records": records} if records is not None else None
        span: AbstractContextManager[object] = self.tracer.start_as_current_span(
            name, attributes=attributes
        )
        return span

    def shutdown(self) -> None:
        if self.owned:
            self.provider.shutdown()  # exports what is still buffered
