"""The use cases' telemetry (service.telemetry) as this server records it: stage spans
when traces are on, counts when metrics are on."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from ..domain.bundle import UpdateResult
from ..service.telemetry import NO_TELEMETRY, InvalidRecords, Telemetry
from .metrics import Metrics
from .tracing import Tracing


class ServerTelemetry(Telemetry):
    def __init__(self, metrics: Metrics | None, tracing: Tracing | None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    def stage(self, name: str, records: int | None = None) -> AbstractContextManager[object]:
        if self.tracing is None:
            return NO_TELEMETRY.stage(name)
        return self.tracing.stage(name, records)

    def bundle_applied(self, schema: str, results: Sequence[UpdateResult], replayed: bool) -> None:
        if self.metrics is not None:
            self.metrics.bundle_applied(schema, results, replayed)

    def bundle_rejected(self, schema: str, results: Sequence[UpdateResult]) -> None:
        if self.metrics is not None:
            self.metrics.bundle_rejected(schema, results)

    def validated(self, invalid: InvalidRecords) -> None:
        if self.metrics is not None:
            self.metrics.validated(invalid)


def telemetry(metrics: Metrics | None, tracing: Tracing | None) -> Telemetry:
    """What the use cases report to: nothing at all when metrics and traces are off."""
    if metrics is None and tracing is None:
        return NO_TELEMETRY
    return ServerTelemetry(metrics, tracing)
