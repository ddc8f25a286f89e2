"""SchemaRegistry rules, end to end through a real gRPC server on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb

from .builders import (
    add_embedding,
    add_enum,
    add_enum_options,
    add_scalar,
    delete_key,
    field_violations,
    get_schema,
    keys_of,
    restore_key,
    set_options,
    set_scalar,
    update_schema,
)
from .conftest import RunningServer


def rejected(
    server: RunningServer, *changes: spb.SchemaChange, expected: int = 0, name: str = "s"
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        update_schema(server.registry, name, expected, *changes)
    return caught.value


def only_violation(error: grpc.RpcError) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert list(violations) == ["changes[0]"], violations
    return violations["changes[0]"]


# --- names --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Cams", "-cams", ".x", "", "a" * 129, "cams/1", "ca ms"])
def test_invalid_schema_names_are_rejected(server: RunningServer, name: str) -> None:
    error = rejected(server, add_scalar("k", "number"), name=name)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "schema name" in error.details()


@pytest.mark.parametrize("name", ["a", "cams.v2_x-1", "0" + "a" * 127])
def test_valid_schema_names_are_accepted(server: RunningServer, name: str) -> None:
    assert update_schema(server.registry, name, 0, add_scalar("k", "number")).schema.version == 1


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("a/b", "contains '/'"),
        (" lead", "must not start or end with a space"),
        ("trail ", "must not start or end with a space"),
        ("$x", "contains '$'"),
        ("", "must not be empty"),
        ("k" * 257, "257 characters long; the limit is 256"),
        ("-._", "at least one letter or digit"),
        ("keyframes", "reserved"),
    ],
)
def test_invalid_key_names_are_rejected(server: RunningServer, key: str, fragment: str) -> None:
    assert fragment in only_violation(rejected(server, add_scalar(key, "varchar")))


def test_key_names_allow_spaces_dots_and_are_case_sensitive(server: RunningServer) -> None:
    keys = ["teamA.description", "camera id", "Score", "score", "k" * 256, "a-b_c.d 9"]
    response = update_schema(server.registry, "s", 0, *[add_scalar(k, "number") for k in keys])
    assert sorted(keys_of(response.schema)) == sorted(keys)


# --- types and their limits ----------------------------------------------------


def test_every_type_and_alias_is_stored_canonically(server: RunningServer) -> None:
    response = update_schema(
        server.registry,
        "s",
        0,
        add_scalar("a", "varchar"),
        add_scalar("b", "string"),
        add_scalar("c", "text"),
        add_scalar("d", "long_string"),
        add_scalar("e", "number"),
        add_scalar("f", "boolean"),
        add_scalar("g", "datetime"),
        add_scalar("h", "uuid"),
        add_enum("i", ["x"]),
        add_embedding("j", 3),
        add_scalar("k", "varchar", max_length=64),
    )
    keys = keys_of(response.schema)
    assert {k: d.type for k, d in keys.items()} == {
        "a": "varchar", "b": "varchar", "c": "text", "d": "text", "e": "number",
        "f": "boolean", "g": "datetime", "h": "uuid", "i": "enum", "j": "embedding",
        "k": "varchar",
    }  # fmt: skip
    assert keys["a"].max_length == 8192
    assert keys["k"].max_length == 64
    assert keys["j"].embedding_size == 3
    assert list(keys["i"].enum_options) == ["x"]


def test_unknown_type_lists_the_valid_types(server: RunningServer) -> None:
    message = only_violation(rejected(server, add_scalar("k", "float")))
    assert 'unknown type "float"' in message
    for name in (
        "varchar",
        "text",
        "number",
        "boolean",
        "datetime",
        "uuid",
        "enum",
        "embedding",
        "string",
        "long_string",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (add_scalar("k", "varchar", max_length=8193), "max_length 8193 is out of range 1..8192"),
        (add_scalar("k", "varchar", max_length=0), "max_length 0 is out of range"),
        (add_scalar("k", "number", max_length=10), "max_length applies only to varchar"),
        (add_scalar("k", "enum"), "add_enum"),
        (add_scalar("k", "embedding"), "add_embedding"),
        (add_embedding("k", 0), "embedding size 0 is out of range 1..4096"),
        (add_embedding("k", 4097), "embedding size 4097 is out of range 1..4096"),
        (add_enum("k", []), "at least one option"),
        (add_enum("k", ["a", "b", "a"]), '"a" is listed twice'),
        (add_enum("k", [""]), "must not be empty"),
        (add_enum("k", [f"o{i}" for i in range(257)]), "at most 256 options; this would make 257"),
    ],
)
def test_type_limits_are_enforced(
    server: RunningServer, change: spb.SchemaChange, fragment: str
) -> None:
    assert fragment in only_violation(rejected(server, change))


def test_limits_are_inclusive(server: RunningServer) -> None:
    response = update_schema(
        server.registry,
        "s",
        0,
        add_scalar("v", "varchar", max_length=8192),
        add_scalar("v1", "varchar", max_length=1),
        add_embedding("e1", 1),
        add_embedding("e4096", 4096),
        add_enum("en", [f"o{i}" for i in range(256)]),
    )
    keys = keys_of(response.schema)
    assert len(keys["en"].enum_options) == 256
    assert keys["e4096"].embedding_size == 4096


def test_every_bad_change_is_reported_with_its_index(server: RunningServer) -> None:
    error = rejected(
        server,
        add_scalar("ok", "number"),
        add_embedding("big", 4097),
        add_scalar("a/b", "number"),
        add_scalar("k", "float"),
    )
    violations = field_violations(error)
    assert sorted(violations) == ["changes[1]", "changes[2]", "changes[3]"]
    assert violations["changes[1]"] == 'key "big": embedding size 4097 is out of range 1..4096'
    assert "3 schema changes are invalid" in error.details()
    with pytest.raises(grpc.RpcError) as caught:
        get_schema(server.registry, "s")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # nothing was written


def test_an_empty_change_is_invalid(server: RunningServer) -> None:
    assert "change is empty" in only_violation(rejected(server, spb.SchemaChange()))


# --- versions and optimistic concurrency ----------------------------------------


def test_versions_are_immutable_and_readable(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"))
    update_schema(reg, "s", 1, add_scalar("b", "text"))
    update_schema(reg, "s", 2, set_scalar("a", "varchar", max_length=10))
    assert sorted(keys_of(get_schema(reg, "s", 1))) == ["a"]
    assert keys_of(get_schema(reg, "s", 1))["a"].type == "number"
    assert keys_of(get_schema(reg, "s", 3))["a"].type == "varchar"
    latest = get_schema(reg, "s")
    assert latest.version == 3
    assert latest.created_at.seconds > 0
    with pytest.raises(grpc.RpcError) as caught:
        get_schema(reg, "s", 4)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert 'schema "s" has no version 4 (versions are 1..3)' in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        get_schema(reg, "s", -1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_schema_is_not_found(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        get_schema(server.registry, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert 'schema "nope" does not exist' in caught.value.details()


def test_a_change_that_alters_nothing_makes_no_version(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"), add_scalar("gone", "text"))
    update_schema(reg, "s", 1, delete_key("gone"))
    for noop in (
        set_scalar("a", "number"),
        restore_key("a"),
        delete_key("gone"),
        set_options(allow_unknown_keys=False),
    ):
        response = update_schema(reg, "s", 2, noop)
        assert not response.changed
        assert response.schema.version == 2
    assert get_schema(reg, "s").version == 2


def test_stale_expected_version_is_aborted(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"))
    for stale in (0, 2):
        error = rejected(server, add_scalar("b", "number"), expected=stale)
        assert error.code() == grpc.StatusCode.ABORTED
        assert f"is at version 1, not the expected version {stale}" in error.details()
    assert sorted(keys_of(get_schema(reg, "s"))) == ["a"]


def test_validate_only_previews_without_writing(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"))
    preview = update_schema(reg, "s", 1, add_scalar("b", "text"), validate_only=True)
    assert preview.changed
    assert preview.schema.version == 2
    assert "b" in keys_of(preview.schema)
    assert get_schema(reg, "s").version == 1


# --- enums -------------------------------------------------------------------------


def test_enum_options_are_append_only(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_enum("weather", ["sunny", "rain"]))
    response = update_schema(reg, "s", 1, add_enum_options("weather", ["snow"]))
    assert list(keys_of(response.schema)["weather"].enum_options) == ["sunny", "rain", "snow"]
    error = rejected(server, add_enum_options("weather", ["fog", "rain"]), expected=2)
    assert only_violation(error) == 'key "weather": enum option "rain" is already an option'
    full = [f"o{i}" for i in range(253)]
    error = rejected(server, add_enum_options("weather", [*full, "x"]), expected=2)
    assert "at most 256 options; this would make 257" in only_violation(error)
    update_schema(reg, "s", 2, add_enum_options("weather", full))
    assert len(keys_of(get_schema(reg, "s"))["weather"].enum_options) == 256


def test_enum_options_need_an_enum_key(server: RunningServer) -> None:
    update_schema(server.registry, "s", 0, add_scalar("n", "number"))
    error = rejected(
        server, add_enum_options("n", ["x"]), add_enum_options("zz", ["x"]), expected=1
    )
    violations = field_violations(error)
    assert violations["changes[0]"] == 'key "n" is number, not an enum'
    assert violations["changes[1]"] == 'schema has no key "zz"'


# --- delete, restore, type changes ----------------------------------------------------


def test_soft_delete_and_restore(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "varchar", max_length=12))
    deleted = keys_of(update_schema(reg, "s", 1, delete_key("a")).schema)["a"]
    assert deleted.state == spb.KEY_STATE_SOFT_DELETED
    assert (deleted.type, deleted.max_length) == ("varchar", 12)  # keeps its type
    error = rejected(server, add_scalar("a", "number"), expected=2)
    assert "already exists (soft-deleted" in only_violation(error)
    restored = keys_of(update_schema(reg, "s", 2, restore_key("a")).schema)["a"]
    assert restored.state == spb.KEY_STATE_ACTIVE
    assert restored.max_length == 12


@pytest.mark.parametrize("soft_first", [False, True])
def test_hard_delete_reserves_the_name_forever(server: RunningServer, soft_first: bool) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_enum("a", ["x"]))
    version = 1
    if soft_first:
        update_schema(reg, "s", version, delete_key("a"))
        version += 1
    response = update_schema(reg, "s", version, delete_key("a", hard=True))
    version += 1
    assert keys_of(response.schema)["a"].state == spb.KEY_STATE_HARD_DELETED
    for change in (add_enum("a", ["x"]), add_scalar("a", "number"), add_embedding("a", 2)):
        assert "reserved forever" in only_violation(rejected(server, change, expected=version))
    message = only_violation(rejected(server, restore_key("a"), expected=version))
    assert message == 'key "a" was hard-deleted; its values are gone and it cannot be restored'
    message = only_violation(rejected(server, set_scalar("a", "text"), expected=version))
    assert "hard-deleted" in message


def test_set_scalar_changes_only_scalars(server: RunningServer) -> None:
    reg = server.registry
    update_schema(
        reg, "s", 0, add_scalar("n", "number"), add_enum("e", ["x"]), add_embedding("v", 4)
    )
    response = update_schema(reg, "s", 1, set_scalar("n", "string", max_length=5))
    assert (keys_of(response.schema)["n"].type, keys_of(response.schema)["n"].max_length) == (
        "varchar", 5)  # fmt: skip
    violations = field_violations(
        rejected(
            server,
            set_scalar("e", "text"),
            set_scalar("v", "text"),
            set_scalar("n", "enum"),
            set_scalar("missing", "text"),
            expected=2,
        )
    )
    assert violations == {
        "changes[0]": 'key "e" is an enum key; enum keys cannot change type',
        "changes[1]": 'key "v" is an embedding key; embedding keys cannot change type',
        "changes[2]": 'key "n": enum keys are declared with add_enum and their values',
        "changes[3]": 'schema has no key "missing"',
    }


def test_set_scalar_on_a_soft_deleted_key_restores_it(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("n", "number"))
    update_schema(reg, "s", 1, delete_key("n"))
    response = update_schema(reg, "s", 2, set_scalar("n", "text"))
    key = keys_of(response.schema)["n"]
    assert (key.type, key.state) == ("text", spb.KEY_STATE_ACTIVE)
    assert "restoring" in response.applied_changes[0]


def test_changes_apply_in_order_within_one_version(server: RunningServer) -> None:
    response = update_schema(
        server.registry, "s", 0,
        add_scalar("a", "number"), delete_key("a"), restore_key("a"), set_scalar("a", "text"),
    )  # fmt: skip
    assert response.schema.version == 1
    assert keys_of(response.schema)["a"].type == "text"
    assert len(response.applied_changes) == 4


def test_allow_unknown_keys_defaults_to_false(server: RunningServer) -> None:
    reg = server.registry
    assert not update_schema(reg, "s", 0, add_scalar("a", "text")).schema.allow_unknown_keys
    assert update_schema(reg, "s", 1, set_options(True)).schema.allow_unknown_keys
    assert not get_schema(reg, "s", 1).allow_unknown_keys


# --- import -----------------------------------------------------------------------


def import_schema(
    server: RunningServer, document: dict[str, object], expected: int, **flags: object
) -> rpb.UpdateSchemaResponse:
    struct = struct_pb2.Struct()
    struct.update(document)
    return server.registry.ImportSchema(
        rpb.ImportSchemaRequest(name="s", expected_version=expected, document=struct, **flags)
    )


def test_import_accepts_flat_and_full_forms(server: RunningServer) -> None:
    response = import_schema(
        server,
        {
            "camera_id": "varchar",
            "notes": "long_string",
            "weather": {"type": "enum", "values": ["sunny", "rain"]},
            "clip": {"type": "embedding", "size": 512},
            "short": {"type": "varchar", "max_length": 64},
        },
        0,
        allow_unknown_keys=True,
    )
    keys = keys_of(response.schema)
    assert keys["notes"].type == "text"
    assert keys["clip"].embedding_size == 512
    assert keys["short"].max_length == 64
    assert response.schema.allow_unknown_keys


def test_import_is_desired_state(server: RunningServer) -> None:
    import_schema(server, {"a": "number", "b": "text", "e": {"type": "enum", "values": ["x"]}}, 0)
    response = import_schema(
        server, {"a": "varchar", "e": {"type": "enum", "values": ["x", "y"]}, "c": "boolean"}, 1
    )
    keys = keys_of(response.schema)
    assert keys["b"].state == spb.KEY_STATE_SOFT_DELETED
    assert keys["a"].type == "varchar"
    assert list(keys["e"].enum_options) == ["x", "y"]
    assert response.schema.version == 2
    again = import_schema(
        server, {"a": "varchar", "e": {"type": "enum", "values": ["y", "x"]}, "c": "boolean"}, 2
    )
    assert not again.changed
    restored = import_schema(server, {"b": "text"}, 2)
    keys = keys_of(restored.schema)
    assert keys["b"].state == spb.KEY_STATE_ACTIVE
    assert {k for k, d in keys.items() if d.state == spb.KEY_STATE_SOFT_DELETED} == {"a", "c", "e"}


def test_import_reports_errors_per_document_entry(server: RunningServer) -> None:
    import_schema(server, {"e": {"type": "enum", "values": ["x", "y"]}, "gone": "number"}, 0)
    update_schema(server.registry, "s", 1, delete_key("gone", hard=True))
    with pytest.raises(grpc.RpcError) as caught:
        import_schema(
            server,
            {
                "e": {"type": "enum", "values": ["x"]},
                "gone": "number",
                "bad": "float",
                "size": {"type": "embedding", "size": 2.5},
                "extra": {"type": "number", "max_length": 3},
            },
            2,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert set(violations) == {
        'document["e"]', 'document["gone"]', 'document["bad"]', 'document["size"]',
        'document["extra"]',
    }  # fmt: skip
    assert "append-only" in violations['document["e"]']
    assert "reserved forever" in violations['document["gone"]']
    assert "whole number" in violations['document["size"]']


# --- listing and export ------------------------------------------------------------


def test_list_schemas_pages_by_name(server: RunningServer) -> None:
    names = [f"s{i:02d}" for i in range(7)]
    for name in reversed(names):
        update_schema(server.registry, name, 0, add_scalar("a", "number"), add_scalar("b", "text"))
    seen: list[str] = []
    token = ""
    while True:
        page = server.registry.ListSchemas(rpb.ListSchemasRequest(page_size=3, page_token=token))
        seen += [s.name for s in page.schemas]
        assert all(s.latest_version == 1 and s.active_keys == 2 for s in page.schemas)
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    with pytest.raises(grpc.RpcError) as caught:
        server.registry.ListSchemas(rpb.ListSchemasRequest(page_token="garbage"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_schema_versions_newest_first_with_summaries(server: RunningServer) -> None:
    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"))
    update_schema(reg, "s", 1, add_enum("w", ["x"]))
    update_schema(reg, "s", 2, delete_key("a"))
    first = reg.ListSchemaVersions(rpb.ListSchemaVersionsRequest(name="s", page_size=2))
    assert [v.version for v in first.versions] == [3, 2]
    assert list(first.versions[0].changes) == ["delete_key a (soft)"]
    rest = reg.ListSchemaVersions(
        rpb.ListSchemaVersionsRequest(name="s", page_size=2, page_token=first.next_page_token)
    )
    assert [v.version for v in rest.versions] == [1]
    assert list(rest.versions[0].changes) == ["add_scalar a number"]
    assert rest.next_page_token == ""


def test_export_json_schema_of_any_version(server: RunningServer) -> None:
    import json

    reg = server.registry
    update_schema(reg, "s", 0, add_scalar("a", "number"))
    update_schema(reg, "s", 1, add_scalar("b", "text"), delete_key("a"))
    old = reg.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="s", version=1))
    new = reg.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="s"))
    assert old.version == 1
    assert new.version == 2
    old_doc, new_doc = json.loads(old.json_schema), json.loads(new.json_schema)
    assert old_doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "number" in old_doc["properties"]["a"]["type"]
    assert new_doc["properties"]["a"] is False  # deleted keys reject every value
    assert new_doc["additionalProperties"] is False
