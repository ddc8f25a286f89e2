"""Input a client can send never produces INTERNAL: each gets a clear client-side status."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer


def forged_token(position: Any) -> str:
    raw = json.dumps({"k": "query", "p": {"q": "0" * 16, "p": position}}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token(kind: str, position: Any) -> str:
    raw = json.dumps({"k": kind, "p": position}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def query_token(order_by: str, position: Any) -> str:
    """A token for QueryMetadata(schema "s", no filter, `order_by`) at a made-up position."""
    digest = hashlib.sha256(f"s\0\0{order_by}".encode()).hexdigest()[:16]
    return token("query", {"q": digest, "p": position})


def nan_document() -> struct_pb2.Struct:
    document = struct_pb2.Struct()
    document.update({"clip": {"type": "embedding", "size": math.nan}})
    return document


def calls(server: RunningServer) -> dict[str, Callable[[], Any]]:
    md, reg = server.metadata, server.registry
    nested = "(" * 5000 + "n = 1" + ")" * 5000
    return {
        "nul idempotency key": lambda: md.ApplyBundle(mpb.ApplyBundleRequest(
            schema="s", updates=[b.metadata_update("u", {"n": 1.0})],
            idempotency_key="k\x00")),
        "nul in filter string": lambda: md.QueryMetadata(
            mpb.QueryMetadataRequest(schema="s", filter='t = "a\\u0000b"')),
        "nul in raw filter": lambda: md.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter="t = 'a\x00b'")),
        "nul in order_by": lambda: md.QueryMetadata(
            mpb.QueryMetadataRequest(schema="s", order_by="`t\x00`")),
        "deep nesting": lambda: md.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter=nested)),
        "deep negation": lambda: md.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter="NOT " * 5000 + "n = 1")),
        "huge filter": lambda: md.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter="n = 1 OR " * 20000 + "n = 2")),
        "forged token": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", page_token=forged_token([1, None, "a\x00"]))),
        "forged token shape": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", page_token=forged_token({"x": 1}))),
        "negative page size": lambda: md.QueryMetadata(
            mpb.QueryMetadataRequest(schema="s", page_size=-5)),
        "negative version": lambda: reg.ExportJsonSchema(
            rpb.ExportJsonSchemaRequest(name="s", version=-3)),
        "nul schema name": lambda: reg.GetSchema(rpb.GetSchemaRequest(name="s\x00")),
        "nul key name": lambda: b.update_schema(reg, "s", 2, b.add_scalar("k\x00", "text")),
        "nul enum option": lambda: b.update_schema(reg, "s", 2, b.add_enum("e", ["a\x00"])),
        "nul value": lambda: md.ApplyBundle(mpb.ApplyBundleRequest(
            schema="s", updates=[b.metadata_update("u", {"t": "a\x00"})])),
        "nul unknown key": lambda: md.ApplyBundle(mpb.ApplyBundleRequest(
            schema="s", updates=[b.metadata_update("u", {"x\x00": "a"})])),
        "lone surrogate escape": lambda: md.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter='t = "\\ud800"')),
        "lone surrogate key": lambda: md.QueryMetadata(
            mpb.QueryMetadataRequest(schema="s", filter="`\\udc00` = 1")),
        "token position of another type": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", order_by="n", page_token=query_token("n", [0, "abc", "u"]))),
        "token position without order": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", page_token=query_token("", [1, "x", "u"]))),
        "token surrogate id": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", order_by="n", page_token=query_token("n", [0, 5.0, "\ud800"]))),
        "token huge number": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", order_by="t", page_token=query_token("t", [0, 10**30, "u"]))),
        "versions token text": lambda: reg.ListSchemaVersions(rpb.ListSchemaVersionsRequest(
            name="s", page_token=token("versions:s", "abc"))),
        "versions token huge": lambda: reg.ListSchemaVersions(rpb.ListSchemaVersionsRequest(
            name="s", page_token=token("versions:s", 10**30))),
        "schemas token surrogate": lambda: reg.ListSchemas(rpb.ListSchemasRequest(
            page_token=token("schemas", "\ud800"))),
        "token number past doubles": lambda: md.QueryMetadata(mpb.QueryMetadataRequest(
            schema="s", order_by="n", page_token=query_token("n", [0, 10**400, "u"]))),
        "schemas token nul": lambda: reg.ListSchemas(rpb.ListSchemasRequest(
            page_token=token("schemas", "a\x00"))),
        "NaN in an imported document": lambda: reg.ImportSchema(rpb.ImportSchemaRequest(
            name="s", expected_version=2, document=nan_document())),
    }  # fmt: skip


CASES = [
    "nul idempotency key", "nul in filter string",
    "nul in raw filter", "nul in order_by", "deep nesting", "deep negation", "huge filter",
    "forged token", "forged token shape", "negative page size", "negative version",
    "nul schema name", "nul key name", "nul enum option", "nul value", "nul unknown key",
    "lone surrogate escape", "lone surrogate key", "token position of another type",
    "token position without order", "token surrogate id", "token huge number",
    "versions token text", "versions token huge", "schemas token surrogate",
    "NaN in an imported document", "token number past doubles", "schemas token nul",
]  # fmt: skip


def test_every_case_is_exercised(server: RunningServer) -> None:
    assert sorted(calls(server)) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_gets_a_client_error(server: RunningServer, case: str) -> None:
    b.update_schema(server.registry, "s", 0, b.add_scalar("n", "number"),
                    b.add_scalar("t", "text"))  # fmt: skip
    b.update_schema(server.registry, "s", 1, b.spb.SchemaChange(
        set_indexed=b.spb.SetIndexed(key="t", indexed=True)))  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        calls(server)[case]()
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "internal" not in error.details().lower()


def test_ids_that_cannot_exist_are_reported_missing(server: RunningServer) -> None:
    b.update_schema(server.registry, "s", 0, b.add_scalar("n", "number"))
    ids = ["a\x00b", "", "x" * 300]
    response = server.metadata.GetMetadata(mpb.GetMetadataRequest(schema="s", data_unit_ids=ids))
    assert list(response.missing_data_unit_ids) == ids
    deleted = server.metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="s", data_unit_ids=ids)
    )
    assert (deleted.deleted_count, list(deleted.missing_data_unit_ids)) == (0, ids)


def _float_list_value(float_list_bytes: bytes) -> mpb.Value:
    """A Value whose embedding is the FloatList wire bytes given (field 5, length-delimited)."""
    value = mpb.Value()
    value.MergeFromString(b"\x2a" + bytes([len(float_list_bytes)]) + float_list_bytes)
    return value


def test_unknown_fields_in_an_embedding_are_not_read_as_floats(server: RunningServer) -> None:
    """A newer client's FloatList may carry fields this server does not know: skip them."""
    b.update_schema(server.registry, "s", 0, b.add_embedding("v", 2))
    two_floats = struct.pack("<ff", 7.0, 9.0)
    only_unknown = _float_list_value(b"\x12\x08" + two_floats)  # field 2, 8 bytes
    assert list(only_unknown.embedding_value.values) == []
    with pytest.raises(grpc.RpcError) as caught:
        server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
            schema="s", updates=[mpb.MetadataUpdate(data_unit_id="u", metadata={"v": only_unknown})]
        ))  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert b.field_violations(caught.value) == {
        'updates[0].metadata["v"]': 'record 0 (data_unit_id "u"): key "v": embedding has 0 '
        "float(s); the key needs exactly 2 (rule: embedding_size)"
    }
    packed = b"\x0a\x08" + two_floats
    for extra in (b"\x12\x03abc" + packed, packed + b"\x10\x01"):  # unknown before, after
        value = _float_list_value(extra)
        server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
            schema="s", updates=[mpb.MetadataUpdate(data_unit_id="w", metadata={"v": value})]
        ))  # fmt: skip
        assert b.stored(server.metadata, "s", "w") == {"w": {"v": [7.0, 9.0]}}


@pytest.mark.parametrize(
    "updates",
    [
        pytest.param([b.metadata_update("u", {"x" * 20000: 1.0})], id="20,000-character key"),
        pytest.param([b.metadata_update("u", {"é" * 1000: 1.0})], id="1,000 non-ASCII key"),
        pytest.param(
            [
                b.metadata_update(f"unit-é-{i:05d}-" + "ü" * 40, {"n": "é" * 40, "t": 5.0})
                for i in range(1000)
            ],
            id="1000 non-ASCII violations",
        ),
    ],
)
def test_a_rejection_reaches_a_client_with_default_limits(
    server: RunningServer, updates: list[mpb.MetadataUpdate]
) -> None:
    """Whatever the request holds, the error fits in a default client's 8 KiB of metadata.

    Past 8 KiB gRPC refuses metadata at random, so each case is sent ten times.
    """
    b.update_schema(server.registry, "s", 0, b.add_scalar("n", "number"),
                    b.add_scalar("t", "text"))  # fmt: skip
    with grpc.insecure_channel(server.address) as channel:  # no raised limits
        stub = b.metadata_stub(channel)
        for _ in range(10):
            with pytest.raises(grpc.RpcError) as caught:
                stub.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=updates))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
            assert b.field_violations(caught.value)  # the BadRequest came through
