import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metareg.v1 import schema_pb2 as _schema_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSchemaRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: _schema_pb2.Schema
    def __init__(self, schema: _Optional[_Union[_schema_pb2.Schema, _Mapping]] = ...) -> None: ...

class ListSchemasRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchemasResponse(_message.Message):
    __slots__ = ("schemas", "next_page_token")
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schemas: _containers.RepeatedCompositeFieldContainer[_schema_pb2.SchemaSummary]
    next_page_token: str
    def __init__(self, schemas: _Optional[_Iterable[_Union[_schema_pb2.SchemaSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSchemaVersionsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchemaVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_schema_pb2.SchemaVersionInfo]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[_schema_pb2.SchemaVersionInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSchemaRequest(_message.Message):
    __slots__ = ("name", "expected_version", "changes", "validate_only", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    changes: _containers.RepeatedCompositeFieldContainer[_schema_pb2.SchemaChange]
    validate_only: bool
    force: bool
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[_schema_pb2.SchemaChange, _Mapping]]] = ..., validate_only: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class UpdateSchemaResponse(_message.Message):
    __slots__ = ("schema", "impact", "changed", "applied_changes")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_CHANGES_FIELD_NUMBER: _ClassVar[int]
    schema: _schema_pb2.Schema
    impact: _schema_pb2.SchemaImpact
    changed: bool
    applied_changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[_Union[_schema_pb2.Schema, _Mapping]] = ..., impact: _Optional[_Union[_schema_pb2.SchemaImpact, _Mapping]] = ..., changed: _Optional[bool] = ..., applied_changes: _Optional[_Iterable[str]] = ...) -> None: ...

class ImportSchemaRequest(_message.Message):
    __slots__ = ("name", "expected_version", "document", "validate_only", "force", "allow_unknown_keys")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNKNOWN_KEYS_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    document: _struct_pb2.Struct
    validate_only: bool
    force: bool
    allow_unknown_keys: bool
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ..., document: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., validate_only: _Optional[bool] = ..., force: _Optional[bool] = ..., allow_unknown_keys: _Optional[bool] = ...) -> None: ...

class ExportJsonSchemaRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ExportJsonSchemaResponse(_message.Message):
    __slots__ = ("version", "json_schema")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    version: int
    json_schema: str
    def __init__(self, version: _Optional[int] = ..., json_schema: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("schema", "page_size", "page_token")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schema: str
    page_size: int
    page_token: str
    def __init__(self, schema: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "time", "key_name", "peer", "rpc", "schema", "summary", "outcome")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    RPC_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    id: int
    time: _timestamp_pb2.Timestamp
    key_name: str
    peer: str
    rpc: str
    schema: str
    summary: str
    outcome: str
    def __init__(self, id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_name: _Optional[str] = ..., peer: _Optional[str] = ..., rpc: _Optional[str] = ..., schema: _Optional[str] = ..., summary: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
