"""Server interceptor: maps domain errors to statuses and logs every RPC."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from ..api.errors import detail_budget, grpc_code, to_rpc_status
from ..domain.errors import MetaregError
from .logs import RpcLog

log = logging.getLogger("metareg.rpc")
log_rpc = RpcLog(log)


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
    """Wraps unary handlers: domain errors become rich statuses, bugs become INTERNAL."""

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

        def invoke(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                if isinstance(request, _Undecodable):
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    context.abort(code, f"request is not a valid {method} message")
                return behaviour(request, context)
            except MetaregError as error:
                code = grpc_code(error)
                status = to_rpc_status(error, detail_budget(context.invocation_metadata()))
                context.abort_with_status(rpc_status.to_status(status))
            except Exception:
                if code is not grpc.StatusCode.OK:
                    raise  # the exception context.abort raises to end the call
                code = grpc.StatusCode.INTERNAL
                incident = uuid.uuid4().hex[:12]
                log.exception("%s failed (incident %s)", method, incident)
                context.abort(code, f"internal server error (incident {incident}); see server log")
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                log_rpc(method, code.name, elapsed_ms)

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
