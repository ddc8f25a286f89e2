"""Server configuration from defaults, environment variables and command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..storage.database import parse_database_url
from . import tls

DEFAULT_DATABASE_URL = "sqlite:///metareg.db"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 50051
    # Server processes sharing the port (SO_REUSEPORT).
    workers: int = 1
    # Per process: data calls (MetadataService's) served at once, and the database
    # connections kept open for them.
    max_workers: int = 16
    # Large enough for 1000 updates carrying 4096-d embeddings.
    max_message_bytes: int = 64 * 1024 * 1024
    idempotency_ttl_hours: float = 24.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    # PEM files. A certificate and its key make the port TLS; a client CA on top of them
    # requires client certificates signed by it (mTLS). Empty: plaintext.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # With no API key, anonymous calls are served on loopback only, and a non-loopback
    # bind refuses to start; this lifts both (the operator takes the risk).
    allow_anonymous: bool = False
    # Per process: calls served at once (each on its own thread) and the bytes of their
    # requests. Past either, or past max_workers data calls, a call is refused with
    # RESOURCE_EXHAUSTED at once; health checks never are.
    max_calls_in_flight: int = 64
    max_request_bytes_in_flight: int = 256 * 1024 * 1024
    # "text" (`2026-12-02 15:43:56,123 INFO metareg.rpc: METHOD OK 0.4ms`) or "json",
    # one object per line.
    log_format: str = "text"
    # Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics; port 0: none (the
    # default). The host defaults to HOST's.
    metrics_port: int = 0
    metrics_host: str = ""
    # Schemas that get a label value of their own in the per-schema metrics, per
    # process; the others (all of them with 0) are counted under "_other".
    metrics_schema_labels: int = 100
    # How often the database is probed for the health service, and how long a probe
    # may take before the database counts as unreachable.
    health_interval_seconds: float = 2.0
    health_timeout_seconds: float = 3.0

    def __post_init__(self) -> None:
        """Refuse settings the server cannot honour (the error names the variable)."""
        object.__setattr__(self, "log_format", self.log_format.strip().lower())
        problems = [
            (0 <= self.port <= 65535, "PORT", "a port number 0..65535"),
            (1 <= self.workers <= 64, "WORKERS", "1..64 processes"),
            (1 <= self.max_workers <= 1024, "MAX_WORKERS", "1..1024 data calls"),
            (self.max_message_bytes >= 1024 * 1024, "MAX_MESSAGE_BYTES", "at least 1 MiB"),
            # The API promises keys for at least 24 hours; 10 years is plenty.
            (24 <= self.idempotency_ttl_hours <= 87_600, "IDEMPOTENCY_TTL_HOURS",
             "24..87600 hours"),
            (0 <= self.shutdown_grace_seconds <= 3600, "SHUTDOWN_GRACE_SECONDS",
             "0..3600 seconds"),
            (self.log_level.upper() in _LOG_LEVELS, "LOG_LEVEL", ", ".join(_LOG_LEVELS)),
            (1 <= self.max_calls_in_flight <= 100_000, "MAX_CALLS_IN_FLIGHT", "1..100000 calls"),
            (self.max_request_bytes_in_flight >= self.max_message_bytes,
             "MAX_REQUEST_BYTES_IN_FLIGHT", "at least MAX_MESSAGE_BYTES (one request)"),
            (self.log_format in LOG_FORMATS, "LOG_FORMAT", " or ".join(LOG_FORMATS)),
            (0 <= self.metrics_port <= 65535, "METRICS_PORT",
             "a port number 1..65535, or 0 for none"),
            (not self.metrics_port or self.metrics_port != self.port, "METRICS_PORT",
             "another port than PORT's"),
            (0 <= self.metrics_schema_labels <= 10_000, "METRICS_SCHEMA_LABELS",
             "0..10000 schemas (0: no schema labels)"),
            (0.1 <= self.health_interval_seconds <= 300, "HEALTH_INTERVAL_SECONDS",
             "0.1..300 seconds"),
            (2 <= self.health_timeout_seconds <= 60, "HEALTH_TIMEOUT_SECONDS", "2..60 seconds"),
        ]  # fmt: skip
        for ok, name, allowed in problems:
            if not ok:  # NaN fails every comparison, so it lands here too
                value = getattr(self, name.lower())
                raise ValueError(f"METAREG_{name}={value!r} is out of range: use {allowed}")
        parse_database_url(self.database_url)  # BadDatabaseURL, a ValueError, names it
        tls.check_files(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then METAREG_<FIELD> variables, then non-None overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = environ.get(f"METAREG_{item.name.upper()}")
            if raw is not None and raw != "":
                kind = type(getattr(cls(), item.name))
                try:
                    values[item.name] = _flag(raw) if kind is bool else kind(raw)
                except ValueError:
                    raise ValueError(
                        f"METAREG_{item.name.upper()}={raw!r} is not a valid {kind.__name__}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _flag(raw: str) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off, any case."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
