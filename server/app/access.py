"""The access interceptor: authenticate each call by its API key, then authorise its RPC
and schema (DESIGN.md §7), before any servicer runs.

It sits inside the error-mapping interceptor, so its refusals are statuses with the usual
one-line log. Health calls pass untouched. With no key at all, calls are anonymous and
served only to loopback peers, unless the server was started with --allow-anonymous.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from metareg.v1 import metadata_pb2, schema_registry_pb2

from ..api import call_notes
from ..api import caller as current_call
from ..domain.access import ANONYMOUS, REQUIRED_ROLE, ApiKey, Caller
from ..domain.errors import PermissionDenied, Unauthenticated
from ..service.access import AccessService
from .config import Config

HEALTH_PREFIX = "/grpc.health.v1.Health/"
_SCHEMA_FIELDS = ("schema", "name")


def schema_fields(services: Iterable[ServiceDescriptor]) -> dict[str, str | None]:
    """Per full method name, the request field naming its schema (None: it names none)."""
    found: dict[str, str | None] = {}
    for service in services:
        for method in service.methods:
            names = {f.name for f in method.input_type.fields}
            field = next((n for n in _SCHEMA_FIELDS if n in names), None)
            found[f"/{service.full_name}/{method.name}"] = field
    return found


METAREG_SERVICES = (
    schema_registry_pb2.DESCRIPTOR.services_by_name["SchemaRegistry"],
    metadata_pb2.DESCRIPTOR.services_by_name["MetadataService"],
)


class AccessInterceptor(grpc.ServerInterceptor):
    """`note_schema`: note the schema each request names, for the JSON log line."""

    def __init__(
        self, access: AccessService, *, anonymous_anywhere: bool, note_schema: bool = False
    ) -> None:
        self.access = access
        self.anonymous_anywhere = anonymous_anywhere
        self.note_schema = note_schema
        self._schema_field = schema_fields(METAREG_SERVICES)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler
        metadata = handler_call_details.invocation_metadata
        if method not in self._schema_field:  # server reflection: any valid key
            return _guard_streams(handler, lambda peer: self._identify(metadata, peer))
        rpc = method.rsplit("/", 1)[-1]
        field = self._schema_field[method]
        behaviour = handler.unary_unary
        assert behaviour is not None  # every metareg RPC is unary
        note_schema = self.note_schema and field is not None

        def invoke(request: Any, context: grpc.ServicerContext) -> Any:
            if note_schema:
                call_notes.note_schema(getattr(request, field or "", ""))
            peer = context.peer()
            key = self._identify(metadata, peer)
            if key is not None:
                authorise(key, rpc, getattr(request, field, "") if field else "")
            who = Caller(key.name if key else ANONYMOUS, peer, rpc)
            token = current_call.serving(current_call.CallIdentity(who, key))
            try:
                return behaviour(request, context)
            finally:
                current_call.done(token)

        return grpc.unary_unary_rpc_method_handler(
            invoke,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _identify(self, metadata: Sequence[Any] | None, peer: str) -> ApiKey | None:
        """The caller's key, or None for an anonymous call that may be served."""
        token = bearer_token(metadata)
        if token is not None:
            return self.access.authenticate(token)
        if self.access.keys_exist():
            raise Unauthenticated(
                "this server needs an API key: send the header `authorization: Bearer "
                "<token>` (metareg.client.Client(token=...), the CLI's --token or "
                "METAREG_TOKEN)"
            )
        if not self.anonymous_anywhere and not is_loopback(peer):
            raise Unauthenticated(
                "anonymous calls are served to this machine only; make an API key with "
                "`metareg auth create-key`, or start the server with --allow-anonymous"
            )
        return None


def authorise(key: ApiKey, rpc: str, schema: str) -> None:
    if not key.allows(rpc):
        needed = REQUIRED_ROLE.get(rpc)
        reason = f"it needs {needed.label}" if needed else "no key may"
        raise PermissionDenied(
            f'the API key "{key.name}" ({key.role.label}) may not call {rpc}: {reason}'
        )
    if schema and not key.covers(schema):
        raise PermissionDenied(
            f'the API key "{key.name}" does not cover schema {schema!r} '
            f"(it covers {', '.join(key.schemas)})"
        )


def bearer_token(metadata: Sequence[Any] | None) -> str | None:
    """The token of the call's `authorization: Bearer <token>` header, if it has one."""
    values = [value for name, value in metadata or () if name == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("send one authorization header, not several")
    value = values[0] if isinstance(values[0], str) else ""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the authorization header must be `Bearer <token>`")
    return token.strip()


def is_loopback(peer: str) -> bool:
    """Whether a gRPC peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:...") is local."""
    kind, _, address = peer.partition(":")
    if kind == "unix":
        return True
    if kind == "ipv6":
        address = address.rpartition("]")[0].lstrip("[")
    elif kind == "ipv4":
        address = address.rpartition(":")[0]
    else:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _guard_streams(
    handler: grpc.RpcMethodHandler, identify: Callable[[str], ApiKey | None]
) -> grpc.RpcMethodHandler:
    """Authenticate a streaming handler's calls (server reflection) before they start."""
    inner = handler.stream_stream or handler.unary_stream or handler.stream_unary
    if inner is None or handler.unary_unary is not None:
        return handler

    def checked(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            identify(context.peer())
        except (Unauthenticated, PermissionDenied) as error:
            context.abort(grpc.StatusCode[error.code.name], error.message)
        return inner(request, context)

    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            checked, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            checked, handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_unary_rpc_method_handler(
        checked, handler.request_deserializer, handler.response_serializer
    )


class UnsafeExposure(ValueError):
    """A server that would serve anonymous callers beyond this machine."""


def check_exposure(config: Config, access: AccessService) -> None:
    """Refuse to serve anonymous calls on a non-loopback interface unless told to."""
    if config.allow_anonymous or is_loopback_host(config.host) or access.keys_exist():
        return
    raise UnsafeExposure(
        f"refusing to listen on {config.host} with no API key: anyone who can reach it "
        "could read, change and delete everything. Make a key first with `metareg auth "
        "create-key --name NAME --role admin`, or pass --allow-anonymous to take the risk"
    )


def is_loopback_host(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    name = host.strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name, or "" / "0.0.0.0" style wildcards: not loopback
