import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_STATE_UNSPECIFIED: _ClassVar[KeyState]
    KEY_STATE_ACTIVE: _ClassVar[KeyState]
    KEY_STATE_SOFT_DELETED: _ClassVar[KeyState]
    KEY_STATE_HARD_DELETED: _ClassVar[KeyState]
KEY_STATE_UNSPECIFIED: KeyState
KEY_STATE_ACTIVE: KeyState
KEY_STATE_SOFT_DELETED: KeyState
KEY_STATE_HARD_DELETED: KeyState

class KeyDefinition(_message.Message):
    __slots__ = ("key", "type", "max_length", "enum_options", "embedding_size", "state", "indexed", "constraints", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ENUM_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: str
    max_length: int
    enum_options: _containers.RepeatedScalarFieldContainer[str]
    embedding_size: int
    state: KeyState
    indexed: bool
    constraints: KeyConstraints
    description: str
    def __init__(self, key: _Optional[str] = ..., type: _Optional[str] = ..., max_length: _Optional[int] = ..., enum_options: _Optional[_Iterable[str]] = ..., embedding_size: _Optional[int] = ..., state: _Optional[_Union[KeyState, str]] = ..., indexed: _Optional[bool] = ..., constraints: _Optional[_Union[KeyConstraints, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class KeyConstraints(_message.Message):
    __slots__ = ("minimum", "maximum", "pattern", "required")
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    minimum: float
    maximum: float
    pattern: str
    required: bool
    def __init__(self, minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., pattern: _Optional[str] = ..., required: _Optional[bool] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ("name", "version", "keys", "allow_unknown_keys", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNKNOWN_KEYS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    keys: _containers.RepeatedCompositeFieldContainer[KeyDefinition]
    allow_unknown_keys: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[KeyDefinition, _Mapping]]] = ..., allow_unknown_keys: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddScalar(_message.Message):
    __slots__ = ("key", "type", "max_length", "indexed", "constraints", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: str
    max_length: int
    indexed: bool
    constraints: KeyConstraints
    description: str
    def __init__(self, key: _Optional[str] = ..., type: _Optional[str] = ..., max_length: _Optional[int] = ..., indexed: _Optional[bool] = ..., constraints: _Optional[_Union[KeyConstraints, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class SetScalar(_message.Message):
    __slots__ = ("key", "type", "max_length", "indexed")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: str
    max_length: int
    indexed: bool
    def __init__(self, key: _Optional[str] = ..., type: _Optional[str] = ..., max_length: _Optional[int] = ..., indexed: _Optional[bool] = ...) -> None: ...

class AddEnum(_message.Message):
    __slots__ = ("key", "values", "indexed", "constraints", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    values: _containers.RepeatedScalarFieldContainer[str]
    indexed: bool
    constraints: KeyConstraints
    description: str
    def __init__(self, key: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., indexed: _Optional[bool] = ..., constraints: _Optional[_Union[KeyConstraints, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class AddEnumOptions(_message.Message):
    __slots__ = ("key", "values")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    key: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class AddEmbedding(_message.Message):
    __slots__ = ("key", "size", "constraints", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    constraints: KeyConstraints
    description: str
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ..., constraints: _Optional[_Union[KeyConstraints, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class DeleteKey(_message.Message):
    __slots__ = ("key", "hard")
    KEY_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    key: str
    hard: bool
    def __init__(self, key: _Optional[str] = ..., hard: _Optional[bool] = ...) -> None: ...

class RestoreKey(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class SetIndexed(_message.Message):
    __slots__ = ("key", "indexed")
    KEY_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    key: str
    indexed: bool
    def __init__(self, key: _Optional[str] = ..., indexed: _Optional[bool] = ...) -> None: ...

class SetConstraints(_message.Message):
    __slots__ = ("key", "constraints")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    constraints: KeyConstraints
    def __init__(self, key: _Optional[str] = ..., constraints: _Optional[_Union[KeyConstraints, _Mapping]] = ...) -> None: ...

class SetDescription(_message.Message):
    __slots__ = ("key", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    description: str
    def __init__(self, key: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class SetOptions(_message.Message):
    __slots__ = ("allow_unknown_keys",)
    ALLOW_UNKNOWN_KEYS_FIELD_NUMBER: _ClassVar[int]
    allow_unknown_keys: bool
    def __init__(self, allow_unknown_keys: _Optional[bool] = ...) -> None: ...

class SchemaChange(_message.Message):
    __slots__ = ("add_scalar", "set_scalar", "add_enum", "add_enum_options", "add_embedding", "delete_key", "restore_key", "set_options", "set_indexed", "set_constraints", "set_description")
    ADD_SCALAR_FIELD_NUMBER: _ClassVar[int]
    SET_SCALAR_FIELD_NUMBER: _ClassVar[int]
    ADD_ENUM_FIELD_NUMBER: _ClassVar[int]
    ADD_ENUM_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ADD_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEY_FIELD_NUMBER: _ClassVar[int]
    RESTORE_KEY_FIELD_NUMBER: _ClassVar[int]
    SET_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SET_INDEXED_FIELD_NUMBER: _ClassVar[int]
    SET_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    SET_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    add_scalar: AddScalar
    set_scalar: SetScalar
    add_enum: AddEnum
    add_enum_options: AddEnumOptions
    add_embedding: AddEmbedding
    delete_key: DeleteKey
    restore_key: RestoreKey
    set_options: SetOptions
    set_indexed: SetIndexed
    set_constraints: SetConstraints
    set_description: SetDescription
    def __init__(self, add_scalar: _Optional[_Union[AddScalar, _Mapping]] = ..., set_scalar: _Optional[_Union[SetScalar, _Mapping]] = ..., add_enum: _Optional[_Union[AddEnum, _Mapping]] = ..., add_enum_options: _Optional[_Union[AddEnumOptions, _Mapping]] = ..., add_embedding: _Optional[_Union[AddEmbedding, _Mapping]] = ..., delete_key: _Optional[_Union[DeleteKey, _Mapping]] = ..., restore_key: _Optional[_Union[RestoreKey, _Mapping]] = ..., set_options: _Optional[_Union[SetOptions, _Mapping]] = ..., set_indexed: _Optional[_Union[SetIndexed, _Mapping]] = ..., set_constraints: _Optional[_Union[SetConstraints, _Mapping]] = ..., set_description: _Optional[_Union[SetDescription, _Mapping]] = ...) -> None: ...

class SchemaImpact(_message.Message):
    __slots__ = ("invalid_records", "sample_data_unit_ids", "invalid_records_by_key", "purged_records_by_key", "missing_records_by_key")
    class InvalidRecordsByKeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PurgedRecordsByKeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class MissingRecordsByKeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INVALID_RECORDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_DATA_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    INVALID_RECORDS_BY_KEY_FIELD_NUMBER: _ClassVar[int]
    PURGED_RECORDS_BY_KEY_FIELD_NUMBER: _ClassVar[int]
    MISSING_RECORDS_BY_KEY_FIELD_NUMBER: _ClassVar[int]
    invalid_records: int
    sample_data_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    invalid_records_by_key: _containers.ScalarMap[str, int]
    purged_records_by_key: _containers.ScalarMap[str, int]
    missing_records_by_key: _containers.ScalarMap[str, int]
    def __init__(self, invalid_records: _Optional[int] = ..., sample_data_unit_ids: _Optional[_Iterable[str]] = ..., invalid_records_by_key: _Optional[_Mapping[str, int]] = ..., purged_records_by_key: _Optional[_Mapping[str, int]] = ..., missing_records_by_key: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SchemaVersionInfo(_message.Message):
    __slots__ = ("version", "created_at", "changes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    version: int
    created_at: _timestamp_pb2.Timestamp
    changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changes: _Optional[_Iterable[str]] = ...) -> None: ...

class SchemaSummary(_message.Message):
    __slots__ = ("name", "latest_version", "active_keys", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_KEYS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    latest_version: int
    active_keys: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., latest_version: _Optional[int] = ..., active_keys: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
