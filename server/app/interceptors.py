"""Server interceptor: maps domain errors to statuses, logs every RPC and, when metrics
are on, counts and times it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from ..api import call_notes
from ..api.errors import detail_budget, grpc_code, to_rpc_status
from ..domain.errors import MetaregError
from .logs import JsonRpcLog, RpcLog

log = logging.getLogger("metareg.rpc")
log_rpc = RpcLog(log)
log_rpc_json = JsonRpcLog(log)

# Per method: what records a finished call's status and seconds (None: nothing).
CallObserver = Callable[[grpc.StatusCode, float], None]
ObserverFor = Callable[[str], CallObserver | None]


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Undecodable(error)

    return deserialize


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Wraps unary handlers: domain errors become rich statuses, bugs become INTERNAL.

    `json_log` writes the JSON form of the RPC line; `observer_for` (the metrics) gives
    each registered method what counts and times its calls; `on_unavailable` is told of
    every UNAVAILABLE a call ends with (the database health probe then looks at once).
    """

    def __init__(
        self,
        *,
        json_log: bool = False,
        observer_for: ObserverFor | None = None,
        on_unavailable: Callable[[], None] | None = None,
    ) -> None:
        self.json_log = json_log
        self.observer_for = observer_for
        self.on_unavailable = on_unavailable

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        behaviour = handler.unary_unary
        # Decided per call before it runs, so that what is off costs nothing in it.
        json_log = self.json_log
        observe = self.observer_for(method) if self.observer_for is not None else None
        on_unavailable = self.on_unavailable

        def invoke(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            notes = call_notes.begin() if json_log else None
            try:
                if isinstance(request, _Undecodable):
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    context.abort(code, f"request is not a valid {method} message")
                return behaviour(request, context)
            except MetaregError as error:
                code = grpc_code(error)
                if code is grpc.StatusCode.UNAVAILABLE and on_unavailable is not None:
                    on_unavailable()
                status = to_rpc_status(error, detail_budget(context.invocation_metadata()))
                context.set_code(code)  # for a tracing context, which sees no abort_with_status
                context.abort_with_status(rpc_status.to_status(status))
            except Exception:
                if code is not grpc.StatusCode.OK:
                    raise  # the exception context.abort raises to end the call
                code = grpc.StatusCode.INTERNAL
                incident = uuid.uuid4().hex[:12]
                log.exception("%s failed (incident %s)", method, incident)
                context.abort(code, f"internal server error (incident {incident}); see server log")
            finally:
                elapsed = time.perf_counter() - started
                if observe is not None:
                    observe(code, elapsed)
                if notes is None:
                    log_rpc(method, code.name, elapsed * 1000)
                else:
                    call_notes.end()
                    log_rpc_json(method, code.name, elapsed * 1000, context.peer(), notes)

        return grpc.unary_unary_rpc_method_handler(
            invoke,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=_passing_bytes(handler.response_serializer),
        )


def _passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """Servicers may answer with a response serialized already (from a cache)."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if type(response) is bytes else serializer(response)

    return serialize
