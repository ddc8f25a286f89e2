"""Small calls served from caches stay correct: latest versions across replicas, pinned
versions and exports from serialized responses, the RPC log line."""

from __future__ import annotations

import io
import logging

import grpc
import pytest

from metareg.server.app.logs import CachedTimeFormatter, RpcLog
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server


def test_the_latest_version_is_never_stale_on_another_replica(server: RunningServer) -> None:
    """Two servers on one database: a change saved through one is what the other serves
    as the latest version on the very next call, to GetSchema and to ValidateMetadata."""
    replica = start_server(server.database_url)
    try:
        b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "text"))
        request = mpb.ValidateMetadataRequest(
            schema="cams", records=[b.metadata_record("u", {"b": 1.0})]
        )
        changes = [b.add_scalar("b", "number"), b.delete_key("b"), b.restore_key("b")]
        for version, change in enumerate(changes, start=2):
            before = replica.registry.GetSchema(rpb.GetSchemaRequest(name="cams"))
            assert before.schema.version == version - 1
            valid_before = replica.metadata.ValidateMetadata(request).ok
            b.update_schema(server.registry, "cams", version - 1, change)
            after = replica.registry.GetSchema(rpb.GetSchemaRequest(name="cams"))
            assert after.schema.version == version
            assert replica.metadata.ValidateMetadata(request).ok is not valid_before
    finally:
        replica.channel.close()
        replica.server.stop(grace=None)


def test_cached_responses_are_the_responses(server: RunningServer) -> None:
    b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "varchar", 8))
    b.update_schema(server.registry, "cams", 1, b.add_enum("e", ["x", "y"]))
    latest = server.registry.GetSchema(rpb.GetSchemaRequest(name="cams"))
    pinned = [server.registry.GetSchema(rpb.GetSchemaRequest(name="cams", version=2))
              for _ in range(3)]  # fmt: skip
    assert all(p == latest for p in pinned)
    first = server.registry.GetSchema(rpb.GetSchemaRequest(name="cams", version=1))
    assert [k.key for k in first.schema.keys] == ["a"]
    assert first.schema.version == 1
    exports = [server.registry.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="cams",
               version=v)) for v in (1, 2, 0, 1)]  # fmt: skip
    assert [e.version for e in exports] == [1, 2, 2, 1]
    assert '"e"' not in exports[0].json_schema
    assert '"e"' in exports[2].json_schema
    assert exports[0] == exports[3]


@pytest.mark.parametrize("version", [0, 7])
def test_unknown_schemas_and_versions_are_not_served_from_cache(
    server: RunningServer, version: int
) -> None:
    b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "text"))
    for name, code in (
        ("nope", grpc.StatusCode.NOT_FOUND),
        ("Bad Name", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            server.registry.GetSchema(rpb.GetSchemaRequest(name=name, version=version))
        assert raised.value.code() == code
    if version:
        with pytest.raises(grpc.RpcError) as raised:
            server.registry.GetSchema(rpb.GetSchemaRequest(name="cams", version=version))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_rpc_log_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CachedTimeFormatter())
    logger = logging.getLogger("metareg.test-rpc-log")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log = RpcLog(logger)
        log("/metareg.v1.SchemaRegistry/GetSchema", "OK", 0.42)
        log("/metareg.v1.MetadataService/ApplyBundle", "INVALID_ARGUMENT", 12.345)
        logger.setLevel(logging.WARNING)
        log("/metareg.v1.SchemaRegistry/GetSchema", "OK", 1.0)  # below the level: nothing
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        " INFO metareg.test-rpc-log: /metareg.v1.SchemaRegistry/GetSchema OK 0.4ms"
    )
    assert lines[1].endswith("ApplyBundle INVALID_ARGUMENT 12.3ms")
    stamp = lines[0].split(" INFO ")[0]
    assert len(stamp) == len("2026-12-02 15:43:56,123")
    assert stamp[10] == " "
    assert stamp[19] == ","


def test_serialized_responses_keep_the_recently_used_within_count_and_bytes() -> None:
    from google.protobuf.wrappers_pb2 import StringValue

    from metareg.server.api.schema_registry import SerializedResponses

    cache = SerializedResponses(limit=2, max_bytes=1000)
    cache.put("a", 1, StringValue(value="x"))
    cache.put("b", 1, StringValue(value="y"))
    assert cache.get("a", 1) is not None  # a is now the most recently used
    cache.put("c", 1, StringValue(value="z"))  # over the count: b, the least recent, goes
    assert (cache.get("a", 1), cache.get("b", 1)) == (
        StringValue(value="x").SerializeToString(),
        None,
    )
    by_bytes = SerializedResponses(limit=10, max_bytes=1000)
    for name in ("a", "b", "c"):
        by_bytes.put(name, 1, StringValue(value=name * 300))  # 303 bytes each
    assert by_bytes.get("a", 1) is not None
    by_bytes.put("d", 1, StringValue(value="d" * 300))  # 1212 bytes: b, the oldest, goes
    assert [by_bytes.get(n, 1) is not None for n in ("a", "b", "c", "d")] == [
        True, False, True, True
    ]  # fmt: skip
