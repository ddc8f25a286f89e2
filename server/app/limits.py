"""Limits that keep one client from starving the rest: calls and request bytes in flight.

Past a limit a call is refused with RESOURCE_EXHAUSTED at once, before its request is
even parsed: the server runs a thread for every call under the cap and two spare, so a
refusal never waits in a queue. Data calls (MetadataService's, over records) have a
lower cap of their own, so that schema reads find a thread and a database connection
however many scans are running; health calls are never counted or refused. After a
burst of large requests the memory they used is handed back to the operating system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from ..domain.errors import ResourceExhausted

log = logging.getLogger("metareg.server")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
# Calls over records, which can take long or hold much memory; the schema registry's
# calls are small, or rare admin changes.
DATA_CALLS = ("/metareg.v1.MetadataService/",)
# After requests of this many bytes in all have come and gone, give memory back.
TRIM_AFTER_BYTES = 64 * 1024 * 1024


class Overloaded(ResourceExhausted):
    """The server is at one of its limits: retry later, or send less at once. The call
    was refused before it ran, so any call, even a write, can be repeated safely."""

    retry_after = 0.1


@dataclass
class _Admitted:
    """A parsed request and the bytes it holds in flight until its call ends."""

    message: Any
    size: int


@dataclass
class _Refused:
    size: int


class Limits:
    """The counters behind LimitsInterceptor, shared by every call of one server."""

    def __init__(self, *, max_calls: int, max_data_calls: int, max_bytes: int) -> None:
        self.max_calls = max_calls
        self.max_data_calls = max_data_calls
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.calls = 0
        self.data_calls = 0
        self.bytes = 0
        self._bytes_since_trim = 0

    def take_bytes(self, size: int) -> bool:
        with self._lock:
            if self.bytes and self.bytes + size > self.max_bytes:
                return False
            self.bytes += size
            self._bytes_since_trim += size
            return True

    def release_bytes(self, size: int) -> None:
        with self._lock:
            self.bytes -= size
            trim = self.bytes == 0 and self._bytes_since_trim >= TRIM_AFTER_BYTES
            if trim:
                self._bytes_since_trim = 0
        if trim:
            release_free_memory()

    def take_call(self, data: bool) -> str | None:
        """Count a call in; the reason it is refused otherwise."""
        with self._lock:
            if self.calls >= self.max_calls:
                return f"{self.calls} calls are in flight, the limit"
            if data and self.data_calls >= self.max_data_calls:
                return f"{self.data_calls} data calls are in flight, the limit"
            self.calls += 1
            self.data_calls += data
            return None

    def release_call(self, data: bool) -> None:
        with self._lock:
            self.calls -= 1
            self.data_calls -= data


class LimitsInterceptor(grpc.ServerInterceptor):
    """Counts calls and request bytes in; place it inside the error-mapping interceptor."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(HEALTH_PREFIX):
            return handler
        limits = self.limits
        data = method.startswith(DATA_CALLS)
        behaviour = handler.unary_unary
        parse = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            if not limits.take_bytes(len(raw)):
                return _Refused(len(raw))  # never parsed: no second copy in memory
            try:
                return _Admitted(parse(raw) if parse else raw, len(raw))
            except BaseException:
                limits.release_bytes(len(raw))
                raise

        def invoke(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Refused):
                raise Overloaded(
                    f"the server holds {limits.bytes} bytes of requests in flight and this "
                    f"one has {request.size}; the limit is {limits.max_bytes}: retry later "
                    "or send smaller requests"
                )
            try:
                refused = limits.take_call(data)
                if refused is not None:
                    raise Overloaded(f"the server is busy ({refused}); retry later")
                try:
                    message = request.message if isinstance(request, _Admitted) else request
                    return behaviour(message, context)
                finally:
                    limits.release_call(data)
            finally:
                if isinstance(request, _Admitted):
                    limits.release_bytes(request.size)

        return grpc.unary_unary_rpc_method_handler(
            invoke,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand memory freed by finished requests back to the OS (glibc keeps it otherwise)."""
    if _TRIM is not None:
        _TRIM(0)
