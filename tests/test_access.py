"""API keys and roles (DESIGN.md §7) on a real server, SQLite and PostgreSQL: every RPC
against every kind of caller, attempts to get around the checks, and anonymous access."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.server.app.access import METAREG_SERVICES, bearer_token, is_loopback
from metareg.server.domain.access import REQUIRED_ROLE, Caller, Role
from metareg.server.domain.errors import Unauthenticated
from metareg.server.service.access import AccessService
from metareg.server.storage.database import Database
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server

CLI = Caller("cli", "local", "test")
AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@dataclass
class Keys:
    tokens: dict[str, str]
    access: AccessService


@pytest.fixture
def keys(server: RunningServer) -> Iterator[Keys]:
    """Schemas cams and team-a-x made anonymously, then one key of each kind."""
    b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "text"))
    b.update_schema(server.registry, "team-a-x", 0, b.add_scalar("a", "text"))
    database = Database(server.database_url)
    access = AccessService(database)
    tokens = {}
    for name, role, globs in (
        ("reader", Role.READER, []),
        ("writer", Role.WRITER, []),
        ("admin", Role.ADMIN, []),
        ("team-a", Role.ADMIN, ["team-a-*"]),
        ("revoked", Role.ADMIN, []),
    ):
        tokens[name] = access.create_key(name, role, globs, CLI)[1]
    access.revoke_key("revoked", CLI)
    tokens["wrong"] = "mrk_" + "x" * 43
    try:
        yield Keys(tokens, access)
    finally:
        database.dispose()


def call(server: RunningServer, method: Any, request: Any, token: str | None) -> grpc.StatusCode:
    """The status a call ends with (OK included)."""
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        method(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def every_rpc(server: RunningServer) -> list[tuple[str, Any, Any]]:
    """(RPC name, stub method, a request naming schema "cams") for every RPC, from the
    service descriptors: an RPC added later is in the matrix at once."""
    stubs = {"SchemaRegistry": server.registry, "MetadataService": server.metadata}
    found = []
    for service in METAREG_SERVICES:
        for method in service.methods:
            request = method.input_type._concrete_class()
            for field in ("schema", "name"):
                if field in method.input_type.fields_by_name:
                    setattr(request, field, "cams")
            found.append((method.name, getattr(stubs[service.name], method.name), request))
    return found


def test_every_rpc_has_a_role() -> None:
    names = {m.name for service in METAREG_SERVICES for m in service.methods}
    assert names == set(REQUIRED_ROLE)


def test_every_rpc_against_every_caller(server: RunningServer, keys: Keys) -> None:
    expected_roles = {"reader": Role.READER, "writer": Role.WRITER, "admin": Role.ADMIN}
    for rpc, method, request in every_rpc(server):
        needed = REQUIRED_ROLE[rpc]
        callers = ("none", "wrong", "revoked", "reader", "writer", "admin", "team-a")
        cells = {who: call(server, method, request, keys.tokens.get(who)) for who in callers}
        for who in ("none", "wrong", "revoked"):
            assert cells[who] is grpc.StatusCode.UNAUTHENTICATED, (rpc, who)
        for who, role in expected_roles.items():
            if role >= needed:
                assert cells[who] not in AUTH_CODES, (rpc, who, cells[who])
            else:
                assert cells[who] is grpc.StatusCode.PERMISSION_DENIED, (rpc, who)
        # A key for other schemas: refused wherever the request names "cams";
        # ListSchemas answers, showing only what the key covers (next test).
        names_schema = rpc != "ListSchemas"
        if names_schema:
            assert cells["team-a"] is grpc.StatusCode.PERMISSION_DENIED, rpc
        else:
            assert cells["team-a"] not in AUTH_CODES, rpc


def test_health_needs_no_key(server: RunningServer, keys: Keys) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="metareg.v1.SchemaRegistry"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_listings_show_only_what_a_key_covers(server: RunningServer, keys: Keys) -> None:
    token = keys.tokens["team-a"]
    auth = [("authorization", f"Bearer {token}")]
    admin = [("authorization", f"Bearer {keys.tokens['admin']}")]
    for name in ("team-a-y", "team-b", "team-a-z"):
        change = rpb.UpdateSchemaRequest(
            name=name, expected_version=0, changes=[b.add_scalar("a", "text")]
        )
        server.registry.UpdateSchema(change, metadata=admin)
    seen = []
    page_token = ""
    while True:  # page by page, with pages of one, so skipped names cannot leak
        reply = server.registry.ListSchemas(
            rpb.ListSchemasRequest(page_size=1, page_token=page_token), metadata=auth
        )
        seen += [s.name for s in reply.schemas]
        page_token = reply.next_page_token
        if not page_token:
            break
    assert seen == ["team-a-x", "team-a-y", "team-a-z"]
    events = server.registry.ListAuditEvents(rpb.ListAuditEventsRequest(), metadata=auth).events
    assert {e.schema for e in events} == {"team-a-x", "team-a-y", "team-a-z"}
    other = rpb.ListAuditEventsRequest(schema="team-b")
    assert call(server, server.registry.ListAuditEvents, other, token) is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    everything = server.registry.ListAuditEvents(
        rpb.ListAuditEventsRequest(page_size=1000),
        metadata=[("authorization", f"Bearer {keys.tokens['admin']}")],
    ).events
    assert {e.schema for e in everything} >= {"cams", "team-b", ""}  # "": key events


def test_a_writer_cannot_create_a_schema_its_globs_would_cover(
    server: RunningServer, keys: Keys
) -> None:
    writer = keys.access.create_key("writer-a", Role.WRITER, ["team-a-*"], CLI)[1]
    request = rpb.UpdateSchemaRequest(
        name="team-a-new", expected_version=0, changes=[b.add_scalar("x", "text")]
    )
    assert call(server, server.registry.UpdateSchema, request, writer) is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    admin = keys.tokens["team-a"]
    assert call(server, server.registry.UpdateSchema, request, admin) is grpc.StatusCode.OK
    request.name = "team-b-new"
    assert call(server, server.registry.UpdateSchema, request, admin) is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert call(server, server.registry.GetSchema, rpb.GetSchemaRequest(name="team-b-new"),
                keys.tokens["admin"]) is grpc.StatusCode.NOT_FOUND  # fmt: skip


def test_import_through_a_key_for_another_schema_changes_nothing(
    server: RunningServer, keys: Keys
) -> None:
    from google.protobuf import struct_pb2

    document = struct_pb2.Struct()  # empty: would soft-delete every key of cams
    request = rpb.ImportSchemaRequest(name="cams", expected_version=1, document=document)
    assert call(server, server.registry.ImportSchema, request, keys.tokens["team-a"]) is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    schema = server.registry.GetSchema(
        rpb.GetSchemaRequest(name="cams"),
        metadata=[("authorization", f"Bearer {keys.tokens['reader']}")],
    ).schema
    assert (schema.version, [k.state for k in schema.keys]) == (1, [1])


@pytest.mark.parametrize(
    "metadata",
    [
        [("authorization", "Bearer {t}"), ("authorization", "Bearer {t}")],
        [("authorization", "Basic {t}")],
        [("authorization", "{t}")],
        [("authorization", "Bearer")],
        [("x-authorization", "Bearer {t}")],
    ],
)
def test_headers_that_do_not_authenticate(
    server: RunningServer, keys: Keys, metadata: list[tuple[str, str]]
) -> None:
    filled = [(k, v.format(t=keys.tokens["admin"])) for k, v in metadata]
    with pytest.raises(grpc.RpcError) as raised:
        server.registry.ListSchemas(rpb.ListSchemasRequest(), metadata=filled)
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_header_names_are_lower_case_on_the_wire(server: RunningServer, keys: Keys) -> None:
    """gRPC refuses an upper-case header name before sending it; the scheme is
    case-insensitive (RFC 7235), so `bearer` works."""
    token = keys.tokens["reader"]
    with pytest.raises(grpc.RpcError) as raised:  # refused by the client, never sent
        server.registry.ListSchemas(rpb.ListSchemasRequest(),
                                    metadata=[("Authorization", f"Bearer {token}")])  # fmt: skip
    assert "Invalid metadata" in (raised.value.details() or "")
    reply = server.registry.ListSchemas(
        rpb.ListSchemasRequest(), metadata=[("authorization", f"bearer {token}")]
    )
    assert [s.name for s in reply.schemas] == ["cams", "team-a-x"]


def test_a_key_revoked_through_another_server_stops_at_once(
    server: RunningServer, keys: Keys
) -> None:
    token = keys.access.create_key("short-lived", Role.READER, [], CLI)[1]
    other = start_server(server.database_url)
    try:
        request = rpb.GetSchemaRequest(name="cams")
        assert call(server, server.registry.GetSchema, request, token) is grpc.StatusCode.OK
        assert call(other, other.registry.GetSchema, request, token) is grpc.StatusCode.OK
        other_access = AccessService(other.server.database)
        other_access.revoke_key("short-lived", CLI)
        assert call(server, server.registry.GetSchema, request, token) is (
            grpc.StatusCode.UNAUTHENTICATED
        )
    finally:
        other.channel.close()
        other.server.stop(grace=None)


def test_anonymous_calls_once_keys_exist_name_the_fix(server: RunningServer, keys: Keys) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        server.registry.ListSchemas(rpb.ListSchemasRequest())
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in (raised.value.details() or "")


def test_no_token_reaches_the_audit_log_or_the_key_listing(
    server: RunningServer, keys: Keys
) -> None:
    events = server.registry.ListAuditEvents(
        rpb.ListAuditEventsRequest(page_size=1000),
        metadata=[("authorization", f"Bearer {keys.tokens['admin']}")],
    ).events
    text = repr([str(e) for e in events]) + repr(keys.access.list_keys())
    for token in keys.tokens.values():
        assert token not in text
        assert token[4:20] not in text
    assert sum(e.summary.startswith("create key") for e in events) == 5
    assert any(e.summary == 'revoke key "revoked"' for e in events)


# --- units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.0.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/s", True),
        ("ipv4:10.0.0.7:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
        ("ipv6:[::ffff:10.0.0.7]:5000", False),
        ("", False),
        ("weird", False),
    ],
)
def test_loopback_peers(peer: str, local: bool) -> None:
    assert is_loopback(peer) is local


def test_bearer_tokens() -> None:
    assert bearer_token([("authorization", "Bearer  abc ")]) == "abc"
    assert bearer_token([("x", "y")]) is None
    with pytest.raises(Unauthenticated):
        bearer_token([("authorization", "Token abc")])
