"""Input a client can send never produces INTERNAL: each gets a clear client-side status."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer


def forged_token(position: Any) -> str:
    raw = json.dumps({"k": "query", "p": {"q": "0" * 16, "p": position}}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
    }  # fmt: skip


CASES = [
    "nul idempotency key", "nul in filter string",
    "nul in raw filter", "nul in order_by", "deep nesting", "deep negation", "huge filter",
    "forged token", "forged token shape", "negative page size", "negative version",
    "nul schema name", "nul key name", "nul enum option", "nul value", "nul unknown key",
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
