"""The audit log (DESIGN.md §7) on a real server, SQLite and PostgreSQL: every change
kind leaves one event in its own transaction, and a change that does not commit leaves
none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2
from sqlalchemy import event
from sqlalchemy.engine import Engine

from metareg.server.domain.access import Caller, Role
from metareg.server.service.access import AccessService
from metareg.server.storage import audit
from metareg.server.storage.database import Database
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer


def events(server: RunningServer, **request: Any) -> list[tuple[str, str, str]]:
    """(rpc, schema, summary) of the audit log, oldest first."""
    listed = server.registry.ListAuditEvents(rpb.ListAuditEventsRequest(page_size=1000, **request))
    return [(e.rpc, e.schema, e.summary) for e in reversed(listed.events)]


def audit_rows(server: RunningServer) -> int:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    finally:
        engine.dispose()


def indexed(key: str) -> spb.SchemaChange:
    return spb.SchemaChange(set_indexed=spb.SetIndexed(key=key, indexed=True))


def test_every_change_kind_leaves_one_event(server: RunningServer) -> None:
    registry, metadata = server.registry, server.metadata
    b.update_schema(
        registry,
        "cams",
        0,
        b.add_scalar("a", "varchar"),
        b.add_enum("e", ["x"]),
        b.add_embedding("v", 2),
        b.add_scalar("n", "number"),
    )
    b.update_schema(
        registry,
        "cams",
        1,
        b.add_enum_options("e", ["y"]),
        b.set_scalar("n", "varchar"),
        indexed("a"),
        b.set_options(True),
    )
    metadata.ApplyBundle(
        mpb.ApplyBundleRequest(
            schema="cams",
            updates=[b.metadata_update(f"u{i}", {"a": "x", "n": "3"}) for i in range(3)],
        )
    )
    b.update_schema(registry, "cams", 2, b.delete_key("a"))
    b.update_schema(registry, "cams", 3, b.restore_key("a"))
    b.update_schema(registry, "cams", 4, b.delete_key("n", hard=True))
    document = struct_pb2.Struct()
    document.update({"a": "varchar", "z": "number"})
    registry.ImportSchema(
        rpb.ImportSchemaRequest(name="cams", expected_version=5, document=document)
    )
    metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["u1", "nope", "u1"])
    )
    metadata.UpdateByFilter(
        mpb.UpdateByFilterRequest(schema="cams", filter="a EXISTS", metadata={"a": b.value("q")})
    )
    metadata.DeleteMetadata(mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["gone"]))
    b.update_schema(registry, "other", 0, b.add_scalar("a", "varchar"))

    assert events(server, schema="cams") == [
        ("UpdateSchema", "cams", "version 1: add_scalar a varchar(8192); add_enum e (1 options); "
                                 "add_embedding v 2; add_scalar n number"),
        ("UpdateSchema", "cams", "version 2: add_enum_options e +[y]; set_scalar n number -> "
                                 "varchar(8192); index a; set_options allow_unknown_keys=True"),
        ("UpdateSchema", "cams", "version 3: delete_key a (soft)"),
        ("UpdateSchema", "cams", "version 4: restore_key a"),
        ("UpdateSchema", "cams",
         'version 5: delete_key n (hard); hard delete of "n" purged 3 value(s)'),
        ("ImportSchema", "cams", "version 6: unindex a; add_scalar z number; "
                                 "delete_key e (soft); delete_key v (soft)"),
        ("DeleteMetadata", "cams", '1 of 2 requested record(s) deleted: "u1"'),
        ("UpdateByFilter", "cams", "filter 'a EXISTS', mode merge: 2 matched, 2 updated"),
        ("DeleteMetadata", "cams", "0 of 1 requested record(s) deleted"),
    ]  # fmt: skip
    assert [e[1] for e in events(server)] == ["cams"] * 9 + ["other"]
    listed = server.registry.ListAuditEvents(rpb.ListAuditEventsRequest(schema="cams")).events
    assert {(e.key_name, e.peer.startswith("ipv4:127.0.0.1:"), e.outcome) for e in listed} == {
        ("anonymous", True, "applied")
    }


def test_events_name_the_key_that_made_the_change(server: RunningServer) -> None:
    b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "varchar"))
    database = Database(server.database_url)
    try:
        access = AccessService(database)
        admin = access.create_key("ops", Role.ADMIN, [], Caller("cli", "local", "auth"))[1]
        writer = access.create_key("ingest", Role.WRITER, ["cams"], Caller("cli", "local", "auth"))[
            1
        ]
    finally:
        database.dispose()
    as_writer = [("authorization", f"Bearer {writer}")]
    server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates=[b.metadata_update("u", {"a": "x"})]),
        metadata=as_writer,
    )
    server.metadata.UpdateByFilter(
        mpb.UpdateByFilterRequest(schema="cams", filter="a = 'x'", metadata={"a": b.value("y")}),
        metadata=as_writer,
    )
    server.metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["u"]), metadata=as_writer
    )
    listed = server.registry.ListAuditEvents(
        rpb.ListAuditEventsRequest(page_size=100), metadata=[("authorization", f"Bearer {admin}")]
    ).events
    made = [(e.key_name, e.rpc) for e in reversed(listed)]
    assert made == [
        ("anonymous", "UpdateSchema"),
        ("cli", "auth"),
        ("cli", "auth"),
        ("ingest", "UpdateByFilter"),
        ("ingest", "DeleteMetadata"),
    ]


def rejected(call: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value.code()  # type: ignore[no-any-return]


def test_changes_that_are_refused_or_only_previewed_leave_no_event(server: RunningServer) -> None:
    registry, metadata = server.registry, server.metadata
    b.update_schema(registry, "cams", 0, b.add_scalar("n", "number"), b.add_scalar("a", "varchar"))
    metadata.ApplyBundle(
        mpb.ApplyBundleRequest(
            schema="cams",
            updates=[b.metadata_update(f"u{i}", {"n": 1.5, "a": "x"}) for i in range(3)],
        )
    )
    before = audit_rows(server)
    S = grpc.StatusCode  # noqa: N806
    update = rpb.UpdateSchemaRequest
    assert [
        rejected(registry.UpdateSchema, update(name="cams", expected_version=1,
                                               changes=[b.set_scalar("n", "boolean")])),
        rejected(registry.UpdateSchema, update(name="cams", expected_version=7,
                                               changes=[b.add_scalar("m", "number")])),
        rejected(registry.UpdateSchema, update(name="cams", expected_version=1,
                                               changes=[b.delete_key("nope")])),
        rejected(metadata.UpdateByFilter, mpb.UpdateByFilterRequest(
            schema="cams", filter="n > 1", metadata={"n": b.value("not a number")})),
        rejected(metadata.UpdateByFilter, mpb.UpdateByFilterRequest(
            schema="cams", filter="n >", metadata={"n": b.value(2.0)})),
        rejected(metadata.DeleteMetadata, mpb.DeleteMetadataRequest(
            schema="nope", data_unit_ids=["u1"])),
    ] == [S.FAILED_PRECONDITION, S.ABORTED, S.INVALID_ARGUMENT, S.INVALID_ARGUMENT,
          S.INVALID_ARGUMENT, S.NOT_FOUND]  # fmt: skip
    registry.UpdateSchema(
        update(
            name="cams",
            expected_version=1,
            validate_only=True,
            changes=[b.delete_key("n", hard=True)],
        )
    )
    preview = metadata.UpdateByFilter(
        mpb.UpdateByFilterRequest(
            schema="cams", filter="n > 1", metadata={"n": b.value(2.0)}, validate_only=True
        )
    )
    assert (preview.matched_count, preview.updated_count) == (3, 0)
    assert audit_rows(server) == before


@contextmanager
def failing_commits() -> Iterator[None]:
    """Every write transaction fails at its commit, after all its statements ran."""

    def refuse(connection: Any) -> None:
        if connection.get_execution_options().get("metareg_write"):
            raise sa.exc.OperationalError("COMMIT", {}, Exception("the disk went away"))

    event.listen(Engine, "commit", refuse)
    try:
        yield
    finally:
        event.remove(Engine, "commit", refuse)


def test_a_change_whose_commit_fails_leaves_no_event(server: RunningServer) -> None:
    registry, metadata = server.registry, server.metadata
    b.update_schema(registry, "cams", 0, b.add_scalar("a", "varchar"))
    metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates=[b.metadata_update("u1", {"a": "x"})])
    )
    before = events(server)
    calls = [
        (registry.UpdateSchema, rpb.UpdateSchemaRequest(
            name="cams", expected_version=1, changes=[b.delete_key("a", hard=True)])),
        (metadata.DeleteMetadata, mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["u1"])),
        (metadata.UpdateByFilter, mpb.UpdateByFilterRequest(
            schema="cams", filter="a EXISTS", metadata={"a": b.value("y")})),
    ]  # fmt: skip
    with failing_commits():
        for call, message in calls:
            assert rejected(call, message) is grpc.StatusCode.UNAVAILABLE
    assert events(server) == before
    assert b.stored(metadata, "cams", "u1") == {"u1": {"a": "x"}}
    assert b.get_schema(registry, "cams").version == 1


def test_a_long_summary_is_cut(server: RunningServer) -> None:
    keys = [b.add_scalar(f"key_with_a_long_name_{number:04d}", "number") for number in range(400)]
    b.update_schema(server.registry, "wide", 0, *keys)
    ((_, _, summary),) = events(server, schema="wide")
    assert len(summary) <= audit.MAX_SUMMARY
    assert summary.startswith("version 1: add_scalar key_with_a_long_name_0000 number; ")
    assert summary.endswith(" more characters)")
