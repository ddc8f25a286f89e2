"""Health that follows the database: the metareg services (and the server as a whole,
service "") are SERVING while the database answers and NOT_SERVING while it does not.

A thread probes the database every `interval` seconds on a connection of its own, and at
once when a call ends UNAVAILABLE (a database error, or every pooled connection busy:
the probe tells the two apart, since it does not use the pool). A draining server stays
NOT_SERVING whatever the probe finds: the health servicer ignores changes from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger("metareg.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Probes prompted by failing calls come at most this often.
MIN_PROBE_GAP_S = 0.2

Probe = Callable[[], str | None]  # None: the database answered; else why not


class DatabaseHealth:
    def __init__(
        self,
        probe: Probe,
        servicer: health.HealthServicer,
        services: Sequence[str],
        *,
        interval: float,
    ) -> None:
        self.probe = probe
        self.servicer = servicer
        self.services = tuple(services)
        self.interval = interval
        self.up = True  # the database was just opened and checked at start
        self.probes = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="database-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def suspect(self) -> None:
        """A call found the database unavailable: probe now rather than at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def check_now(self) -> bool:
        """Probe once, update the health services, and say whether the database is up."""
        problem = self.probe()
        self.probes += 1
        up = problem is None
        if up != self.up:
            self.up = up
            status = SERVING if up else NOT_SERVING
            for service in self.services:
                self.servicer.set(service, status)
            if up:
                log.info("the database answers again: health SERVING")
            else:
                log.warning("the database is unreachable (%s): health NOT_SERVING", problem)
        return up

    def _run(self) -> None:
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                self.check_now()
            except Exception:  # a bug in a probe must not end the health checks
                log.exception("the database health probe failed")
            self._wake.wait(self.interval)
            self._wake.clear()
            self._stopped.wait(max(0.0, started + MIN_PROBE_GAP_S - time.monotonic()))
