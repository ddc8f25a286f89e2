"""The channel, per-call deadlines, request headers and retries with backoff.

Only calls that are safe to repeat are retried: reads, and ApplyBundle requests that
carry an idempotency key (the server answers a repeat with the first result).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2_grpc

from ._errors import from_grpc_error

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Bundles and validations start a new request before one grows past this."""
"""The server accepts 64 MiB messages: 1000 updates with 4096-d embeddings fit easily."""
ERROR_DETAIL_BYTES = 4 * 1024 * 1024
"""How many bytes of error details to ask for (the server's maximum), so that a rejected
bundle reports every violation instead of the first ~7 KB."""
MAX_METADATA_BYTES = 16 * 1024 * 1024
"""Our limit for received metadata: the details above travel base64-encoded in trailers."""
DETAIL_BYTES_HEADER = "metareg-error-detail-bytes"
DEFAULT_TIMEOUT = 30.0

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    # Reconnect soon after a failure, so that a retry can find a restarted server.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)

READ_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# The server answers ABORTED when a concurrent write touched the same records; with an
# idempotency key a bundle can simply be sent again.
IDEMPOTENT_WRITE_RETRY_CODES = READ_RETRY_CODES | {grpc.StatusCode.ABORTED}

Response = TypeVar("Response")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between attempts of a retryable call."""

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


class Transport:
    """One channel and its stubs; every call gets a deadline, headers and typed errors."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        interceptors: Sequence[Any] = (),
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.retry = retry
        self.metadata: tuple[tuple[str, str], ...] = (
            *(metadata or ()),
            (DETAIL_BYTES_HEADER, str(ERROR_DETAIL_BYTES)),
        )
        channel = (
            grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
            if credentials is not None
            else grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        )
        self.channel: grpc.Channel = channel
        intercepted = grpc.intercept_channel(channel, *interceptors) if interceptors else channel
        self.registry = schema_registry_pb2_grpc.SchemaRegistryStub(intercepted)
        self.metadata_service = metadata_pb2_grpc.MetadataServiceStub(intercepted)

    def call(
        self,
        method: Callable[..., Response],
        request: Any,
        *,
        retry_on: frozenset[grpc.StatusCode] = frozenset(),
        timeout: float | None = None,
    ) -> Response:
        """Invoke a unary method; retry the status codes in `retry_on` with backoff.

        Each attempt has its own deadline of `timeout` seconds. A failure raises the
        typed CallError for its status code.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as error:
                code = error.code() if callable(getattr(error, "code", None)) else None
                if code not in retry_on or attempt >= self.retry.max_attempts:
                    raise from_grpc_error(error) from error
            time.sleep(self.retry.backoff(attempt))

    def close(self) -> None:
        self.channel.close()
