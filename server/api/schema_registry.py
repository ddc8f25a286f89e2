"""SchemaRegistry servicer: translate requests, call the schema service, translate back."""

from __future__ import annotations

import threading
from collections import OrderedDict

import grpc
from google.protobuf.message import Message

from metareg.v1 import schema_registry_pb2 as pb
from metareg.v1 import schema_registry_pb2_grpc as pb_grpc

from ..service.audit import AuditService
from ..service.schemas import SchemaService, SchemaUpdate
from . import caller, convert


def _update_response(result: SchemaUpdate) -> pb.UpdateSchemaResponse:
    return pb.UpdateSchemaResponse(
        schema=convert.schema_to_proto(result.schema),
        impact=convert.impact_to_proto(result.impact),
        changed=result.changed,
        applied_changes=result.applied,
    )


class SchemaRegistryServicer(pb_grpc.SchemaRegistryServicer):
    """The registry's RPCs. GetSchema and ExportJsonSchema answer with serialized responses
    cached per (schema, version) - versions never change - which the server's interceptor
    sends as they are (see app.interceptors)."""

    def __init__(self, service: SchemaService, audit_log: AuditService | None = None) -> None:
        self.service = service
        self.audit_log = audit_log or AuditService(service.db)
        self._schemas = SerializedResponses()
        self._exports = SerializedResponses()

    def GetSchema(self, request: pb.GetSchemaRequest, context: grpc.ServicerContext) -> bytes:
        if request.version > 0:  # a pinned version that was served once needs no read
            cached = self._schemas.get(request.name, request.version)
            if cached is not None:
                return cached
        schema = self.service.get_schema(request.name, request.version)
        return self._schemas.get(schema.name, schema.version) or self._schemas.put(
            schema.name,
            schema.version,
            pb.GetSchemaResponse(schema=convert.schema_to_proto(schema)),
        )

    def ListSchemas(
        self, request: pb.ListSchemasRequest, context: grpc.ServicerContext
    ) -> pb.ListSchemasResponse:
        key = caller.current("ListSchemas").key
        page = self.service.list_schemas(request.page_size, request.page_token, key)
        return pb.ListSchemasResponse(
            schemas=[convert.summary_to_proto(s) for s in page.items],
            next_page_token=page.next_token,
        )

    def ListSchemaVersions(
        self, request: pb.ListSchemaVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListSchemaVersionsResponse:
        page = self.service.list_versions(request.name, request.page_size, request.page_token)
        return pb.ListSchemaVersionsResponse(
            versions=[convert.version_info_to_proto(v) for v in page.items],
            next_page_token=page.next_token,
        )

    def UpdateSchema(
        self, request: pb.UpdateSchemaRequest, context: grpc.ServicerContext
    ) -> pb.UpdateSchemaResponse:
        result = self.service.update_schema(
            request.name,
            request.expected_version,
            convert.changes_from_proto(request.changes),
            validate_only=request.validate_only,
            force=request.force,
            caller=caller.current("UpdateSchema").caller,
        )
        return _update_response(result)

    def ImportSchema(
        self, request: pb.ImportSchemaRequest, context: grpc.ServicerContext
    ) -> pb.UpdateSchemaResponse:
        allow = request.allow_unknown_keys if request.HasField("allow_unknown_keys") else None
        result = self.service.import_schema(
            request.name,
            request.expected_version,
            convert.document_from_proto(request.document),
            allow_unknown_keys=allow,
            validate_only=request.validate_only,
            force=request.force,
            caller=caller.current("ImportSchema").caller,
        )
        return _update_response(result)

    def ExportJsonSchema(
        self, request: pb.ExportJsonSchemaRequest, context: grpc.ServicerContext
    ) -> bytes:
        if request.version > 0:  # as in GetSchema
            cached = self._exports.get(request.name, request.version)
            if cached is not None:
                return cached
        schema = self.service.get_schema(request.name, request.version)
        cached = self._exports.get(schema.name, schema.version)
        if cached is not None:
            return cached
        version, document = self.service.export_json_schema(schema)
        return self._exports.put(
            schema.name, version, pb.ExportJsonSchemaResponse(version=version, json_schema=document)
        )

    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        key = caller.current("ListAuditEvents").key
        page = self.audit_log.list_events(key, request.schema, request.page_size,
                                          request.page_token)  # fmt: skip
        return pb.ListAuditEventsResponse(
            events=[convert.audit_event_to_proto(e) for e in page.items],
            next_page_token=page.next_token,
        )


class SerializedResponses:
    """Serialized responses by (schema, version), least recently used out first, at most
    `limit` of them and `max_bytes` in all."""

    def __init__(self, limit: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: int) -> bytes | None:
        key = (name, version)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, name: str, version: int, response: Message) -> bytes:
        serialized: bytes = response.SerializeToString()
        key = (name, version)
        with self._lock:
            self._bytes += len(serialized) - len(self._entries.pop(key, b""))
            self._entries[key] = serialized
            while self._entries and (
                len(self._entries) > self._limit or self._bytes > self._max_bytes
            ):
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
        return serialized
