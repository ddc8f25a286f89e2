import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpdateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_MODE_UNSPECIFIED: _ClassVar[UpdateMode]
    UPDATE_MODE_MERGE: _ClassVar[UpdateMode]
    UPDATE_MODE_REPLACE: _ClassVar[UpdateMode]
    UPDATE_MODE_KEEP_EXISTING: _ClassVar[UpdateMode]

class UpdateOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_OUTCOME_UNSPECIFIED: _ClassVar[UpdateOutcome]
    UPDATE_OUTCOME_APPLIED: _ClassVar[UpdateOutcome]
    UPDATE_OUTCOME_UNCHANGED: _ClassVar[UpdateOutcome]
    UPDATE_OUTCOME_REJECTED: _ClassVar[UpdateOutcome]
    UPDATE_OUTCOME_NOT_APPLIED: _ClassVar[UpdateOutcome]
UPDATE_MODE_UNSPECIFIED: UpdateMode
UPDATE_MODE_MERGE: UpdateMode
UPDATE_MODE_REPLACE: UpdateMode
UPDATE_MODE_KEEP_EXISTING: UpdateMode
UPDATE_OUTCOME_UNSPECIFIED: UpdateOutcome
UPDATE_OUTCOME_APPLIED: UpdateOutcome
UPDATE_OUTCOME_UNCHANGED: UpdateOutcome
UPDATE_OUTCOME_REJECTED: UpdateOutcome
UPDATE_OUTCOME_NOT_APPLIED: UpdateOutcome

class FloatList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class IntList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("string_value", "number_value", "bool_value", "null_value", "embedding_value", "int_list_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    number_value: float
    bool_value: bool
    null_value: _struct_pb2.NullValue
    embedding_value: FloatList
    int_list_value: IntList
    def __init__(self, string_value: _Optional[str] = ..., number_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., null_value: _Optional[_Union[_struct_pb2.NullValue, str]] = ..., embedding_value: _Optional[_Union[FloatList, _Mapping]] = ..., int_list_value: _Optional[_Union[IntList, _Mapping]] = ...) -> None: ...

class MetadataRecord(_message.Message):
    __slots__ = ("data_unit_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    data_unit_id: str
    metadata: _containers.MessageMap[str, Value]
    def __init__(self, data_unit_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class MetadataUpdate(_message.Message):
    __slots__ = ("data_unit_id", "metadata", "mode")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    data_unit_id: str
    metadata: _containers.MessageMap[str, Value]
    mode: UpdateMode
    def __init__(self, data_unit_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ..., mode: _Optional[_Union[UpdateMode, str]] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("field", "index", "data_unit_id", "key", "rule", "value", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    index: int
    data_unit_id: str
    key: str
    rule: str
    value: str
    description: str
    def __init__(self, field: _Optional[str] = ..., index: _Optional[int] = ..., data_unit_id: _Optional[str] = ..., key: _Optional[str] = ..., rule: _Optional[str] = ..., value: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ValidateMetadataRequest(_message.Message):
    __slots__ = ("schema", "records", "schema_version", "coerce_strings", "records_json")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    COERCE_STRINGS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_JSON_FIELD_NUMBER: _ClassVar[int]
    schema: str
    records: _containers.RepeatedCompositeFieldContainer[MetadataRecord]
    schema_version: int
    coerce_strings: bool
    records_json: bytes
    def __init__(self, schema: _Optional[str] = ..., records: _Optional[_Iterable[_Union[MetadataRecord, _Mapping]]] = ..., schema_version: _Optional[int] = ..., coerce_strings: _Optional[bool] = ..., records_json: _Optional[bytes] = ...) -> None: ...

class RecordReport(_message.Message):
    __slots__ = ("index", "data_unit_id", "violations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    data_unit_id: str
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, index: _Optional[int] = ..., data_unit_id: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class ValidateMetadataResponse(_message.Message):
    __slots__ = ("schema_version", "ok", "invalid_records", "valid_count", "invalid_count")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    INVALID_RECORDS_FIELD_NUMBER: _ClassVar[int]
    VALID_COUNT_FIELD_NUMBER: _ClassVar[int]
    INVALID_COUNT_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    ok: bool
    invalid_records: _containers.RepeatedCompositeFieldContainer[RecordReport]
    valid_count: int
    invalid_count: int
    def __init__(self, schema_version: _Optional[int] = ..., ok: _Optional[bool] = ..., invalid_records: _Optional[_Iterable[_Union[RecordReport, _Mapping]]] = ..., valid_count: _Optional[int] = ..., invalid_count: _Optional[int] = ...) -> None: ...

class ApplyBundleRequest(_message.Message):
    __slots__ = ("schema", "updates", "partial", "idempotency_key", "coerce_strings", "updates_json")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    COERCE_STRINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATES_JSON_FIELD_NUMBER: _ClassVar[int]
    schema: str
    updates: _containers.RepeatedCompositeFieldContainer[MetadataUpdate]
    partial: bool
    idempotency_key: str
    coerce_strings: bool
    updates_json: bytes
    def __init__(self, schema: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[MetadataUpdate, _Mapping]]] = ..., partial: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., coerce_strings: _Optional[bool] = ..., updates_json: _Optional[bytes] = ...) -> None: ...

class UpdateResult(_message.Message):
    __slots__ = ("index", "data_unit_id", "outcome", "revision", "violations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    data_unit_id: str
    outcome: UpdateOutcome
    revision: int
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, index: _Optional[int] = ..., data_unit_id: _Optional[str] = ..., outcome: _Optional[_Union[UpdateOutcome, str]] = ..., revision: _Optional[int] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class ApplyBundleResponse(_message.Message):
    __slots__ = ("schema_version", "results", "applied_count", "unchanged_count", "rejected_count", "replayed")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    results: _containers.RepeatedCompositeFieldContainer[UpdateResult]
    applied_count: int
    unchanged_count: int
    rejected_count: int
    replayed: bool
    def __init__(self, schema_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[UpdateResult, _Mapping]]] = ..., applied_count: _Optional[int] = ..., unchanged_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class BundleRejection(_message.Message):
    __slots__ = ("schema_version", "results")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    results: _containers.RepeatedCompositeFieldContainer[UpdateResult]
    def __init__(self, schema_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[UpdateResult, _Mapping]]] = ...) -> None: ...

class GetMetadataRequest(_message.Message):
    __slots__ = ("schema", "data_unit_ids")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    schema: str
    data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[str] = ..., data_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StoredRecord(_message.Message):
    __slots__ = ("data_unit_id", "metadata", "schema_version", "revision", "updated_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    DATA_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    data_unit_id: str
    metadata: _containers.MessageMap[str, Value]
    schema_version: int
    revision: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, data_unit_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ..., schema_version: _Optional[int] = ..., revision: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetMetadataResponse(_message.Message):
    __slots__ = ("records", "missing_data_unit_ids", "unread_data_unit_ids")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    UNREAD_DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    missing_data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    unread_data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., missing_data_unit_ids: _Optional[_Iterable[str]] = ..., unread_data_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteMetadataRequest(_message.Message):
    __slots__ = ("schema", "data_unit_ids")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    schema: str
    data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[str] = ..., data_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteMetadataResponse(_message.Message):
    __slots__ = ("deleted_count", "missing_data_unit_ids")
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    missing_data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted_count: _Optional[int] = ..., missing_data_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryMetadataRequest(_message.Message):
    __slots__ = ("schema", "filter", "order_by", "page_size", "page_token")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schema: str
    filter: str
    order_by: str
    page_size: int
    page_token: str
    def __init__(self, schema: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryMetadataResponse(_message.Message):
    __slots__ = ("records", "next_page_token", "schema_version")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    next_page_token: str
    schema_version: int
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., schema_version: _Optional[int] = ...) -> None: ...

class CountMetadataRequest(_message.Message):
    __slots__ = ("schema", "filter")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    schema: str
    filter: str
    def __init__(self, schema: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class CountMetadataResponse(_message.Message):
    __slots__ = ("count", "schema_version")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    count: int
    schema_version: int
    def __init__(self, count: _Optional[int] = ..., schema_version: _Optional[int] = ...) -> None: ...

class ListValuesRequest(_message.Message):
    __slots__ = ("schema", "key", "prefix", "filter", "limit")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    schema: str
    key: str
    prefix: str
    filter: str
    limit: int
    def __init__(self, schema: _Optional[str] = ..., key: _Optional[str] = ..., prefix: _Optional[str] = ..., filter: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ValueCount(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: Value
    count: int
    def __init__(self, value: _Optional[_Union[Value, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class ListValuesResponse(_message.Message):
    __slots__ = ("values", "more", "schema_version")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[ValueCount]
    more: bool
    schema_version: int
    def __init__(self, values: _Optional[_Iterable[_Union[ValueCount, _Mapping]]] = ..., more: _Optional[bool] = ..., schema_version: _Optional[int] = ...) -> None: ...

class UpdateByFilterRequest(_message.Message):
    __slots__ = ("schema", "filter", "metadata", "mode", "validate_only", "coerce_strings")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    COERCE_STRINGS_FIELD_NUMBER: _ClassVar[int]
    schema: str
    filter: str
    metadata: _containers.MessageMap[str, Value]
    mode: UpdateMode
    validate_only: bool
    coerce_strings: bool
    def __init__(self, schema: _Optional[str] = ..., filter: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ..., mode: _Optional[_Union[UpdateMode, str]] = ..., validate_only: _Optional[bool] = ..., coerce_strings: _Optional[bool] = ...) -> None: ...

class UpdateByFilterResponse(_message.Message):
    __slots__ = ("matched_count", "updated_count", "schema_version")
    MATCHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    matched_count: int
    updated_count: int
    schema_version: int
    def __init__(self, matched_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., schema_version: _Optional[int] = ...) -> None: ...
