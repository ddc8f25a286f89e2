"""Server configuration from defaults, environment variables and command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///metareg.db"


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 50051
    max_workers: int = 16
    # Large enough for 1000 updates carrying 4096-d embeddings.
    max_message_bytes: int = 64 * 1024 * 1024
    idempotency_ttl_hours: float = 24.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"

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
                    values[item.name] = kind(raw)
                except ValueError:
                    raise ValueError(
                        f"METAREG_{item.name.upper()}={raw!r} is not a valid {kind.__name__}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)
