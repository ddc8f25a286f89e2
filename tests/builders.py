"""Small builders for requests and readers for rich error details, shared by tests."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb


def add_scalar(key: str, type_: str, max_length: int | None = None) -> spb.SchemaChange:
    change = spb.AddScalar(key=key, type=type_)
    if max_length is not None:
        change.max_length = max_length
    return spb.SchemaChange(add_scalar=change)


def set_scalar(key: str, type_: str, max_length: int | None = None) -> spb.SchemaChange:
    change = spb.SetScalar(key=key, type=type_)
    if max_length is not None:
        change.max_length = max_length
    return spb.SchemaChange(set_scalar=change)


def add_enum(key: str, values: list[str]) -> spb.SchemaChange:
    return spb.SchemaChange(add_enum=spb.AddEnum(key=key, values=values))


def add_enum_options(key: str, values: list[str]) -> spb.SchemaChange:
    return spb.SchemaChange(add_enum_options=spb.AddEnumOptions(key=key, values=values))


def add_embedding(key: str, size: int) -> spb.SchemaChange:
    return spb.SchemaChange(add_embedding=spb.AddEmbedding(key=key, size=size))


def delete_key(key: str, hard: bool = False) -> spb.SchemaChange:
    return spb.SchemaChange(delete_key=spb.DeleteKey(key=key, hard=hard))


def restore_key(key: str) -> spb.SchemaChange:
    return spb.SchemaChange(restore_key=spb.RestoreKey(key=key))


def constraints(
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    required: bool = False,
) -> spb.KeyConstraints:
    message = spb.KeyConstraints(required=required)
    if minimum is not None:
        message.minimum = minimum
    if maximum is not None:
        message.maximum = maximum
    if pattern is not None:
        message.pattern = pattern
    return message


def add_constrained(
    key: str, type_: str, description: str = "", max_length: int | None = None, **limits: Any
) -> spb.SchemaChange:
    """add_scalar, add_enum (type_ "enum", limits["values"]) or add_embedding (type_
    "embedding", limits["size"]) with constraints and a description."""
    given = constraints(**{k: v for k, v in limits.items() if k not in ("values", "size")})
    if type_ == "enum":
        enum = spb.AddEnum(key=key, values=limits["values"], constraints=given,
                           description=description)  # fmt: skip
        return spb.SchemaChange(add_enum=enum)
    if type_ == "embedding":
        return spb.SchemaChange(add_embedding=spb.AddEmbedding(
            key=key, size=limits["size"], constraints=given, description=description))  # fmt: skip
    change = spb.AddScalar(key=key, type=type_, constraints=given, description=description)
    if max_length is not None:
        change.max_length = max_length
    return spb.SchemaChange(add_scalar=change)


def set_constraints(key: str, **limits: Any) -> spb.SchemaChange:
    return spb.SchemaChange(
        set_constraints=spb.SetConstraints(key=key, constraints=constraints(**limits))
    )


def set_description(key: str, description: str) -> spb.SchemaChange:
    return spb.SchemaChange(set_description=spb.SetDescription(key=key, description=description))


def set_options(allow_unknown_keys: bool) -> spb.SchemaChange:
    return spb.SchemaChange(set_options=spb.SetOptions(allow_unknown_keys=allow_unknown_keys))


def struct_document(document: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(document)
    return struct


def update_schema(
    registry: Any, name: str, expected: int, *changes: spb.SchemaChange, **flags: bool
) -> rpb.UpdateSchemaResponse:
    return registry.UpdateSchema(
        rpb.UpdateSchemaRequest(name=name, expected_version=expected, changes=changes, **flags)
    )


def get_schema(registry: Any, name: str, version: int = 0) -> spb.Schema:
    return registry.GetSchema(rpb.GetSchemaRequest(name=name, version=version)).schema


def keys_of(schema: spb.Schema) -> dict[str, spb.KeyDefinition]:
    return {k.key: k for k in schema.keys}


def details(error: grpc.RpcError) -> list[Any]:
    """The unpacked google.rpc.Status details of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    unpacked = []
    for packed in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.ErrorInfo,
            mpb.BundleRejection,
            spb.SchemaImpact,
        ):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                unpacked.append(message)
    return unpacked


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """BadRequest field -> description."""
    found: dict[str, str] = {}
    for detail in details(error):
        if isinstance(detail, error_details_pb2.BadRequest):
            found.update({v.field: v.description for v in detail.field_violations})
    return found


def value(v: object) -> mpb.Value:
    """A metadata value from a plain Python value (floats list -> embedding)."""
    message = mpb.Value()
    if v is None:
        message.null_value = 0
    elif isinstance(v, bool):
        message.bool_value = v
    elif isinstance(v, int | float):
        message.number_value = v
    elif isinstance(v, str):
        message.string_value = v
    elif (
        isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and v
    ):
        message.int_list_value.values.extend(v)
    elif isinstance(v, list):
        message.embedding_value.values.extend(v)
    else:
        raise TypeError(type(v))
    return message


def metadata_update(
    data_unit_id: str, metadata: dict[str, object], mode: int = mpb.UPDATE_MODE_UNSPECIFIED
) -> mpb.MetadataUpdate:
    update = mpb.MetadataUpdate(data_unit_id=data_unit_id, mode=mode)
    for key, v in metadata.items():
        update.metadata[key].CopyFrom(value(v))
    return update


def metadata_record(data_unit_id: str, metadata: dict[str, object]) -> mpb.MetadataRecord:
    record = mpb.MetadataRecord(data_unit_id=data_unit_id)
    for key, v in metadata.items():
        record.metadata[key].CopyFrom(value(v))
    return record


def python_value(v: mpb.Value) -> object:
    kind = v.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "embedding_value":
        return list(v.embedding_value.values)
    if kind == "int_list_value":
        return list(v.int_list_value.values)
    return getattr(v, kind) if kind else None


def stored(metadata_stub: Any, schema: str, *ids: str) -> dict[str, dict[str, object]]:
    response = metadata_stub.GetMetadata(mpb.GetMetadataRequest(schema=schema, data_unit_ids=ids))
    return {
        r.data_unit_id: {k: python_value(v) for k, v in r.metadata.items()}
        for r in response.records
    }


def metadata_stub(channel: grpc.Channel) -> Any:
    from metareg.v1 import metadata_pb2_grpc

    return metadata_pb2_grpc.MetadataServiceStub(channel)
