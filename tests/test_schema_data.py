"""Schema changes against stored metadata: hiding, restoring, purging and type-change impact."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb

from . import builders as b
from .conftest import RunningServer


def apply(server: RunningServer, *updates: mpb.MetadataUpdate) -> mpb.ApplyBundleResponse:
    return server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=updates))


def raw_rows(server: RunningServer) -> dict[str, str]:
    """data_unit_id -> stored scalar JSON text, read straight from the database."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT data_unit_id, CAST(data AS TEXT) FROM metadata_records"))  # fmt: skip
            return dict(rows.all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def embedding_keys(server: RunningServer) -> list[str]:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return sorted(connection.execute(sa.text("SELECT key FROM metadata_embeddings"))
                          .scalars())  # fmt: skip
    finally:
        engine.dispose()


@pytest.fixture
def loaded(server: RunningServer) -> RunningServer:
    b.update_schema(server.registry, "s", 0, b.add_scalar("name", "varchar"),
                    b.add_scalar("score", "number"), b.add_embedding("clip", 2))  # fmt: skip
    apply(server, *[
        b.metadata_update(f"u{i:02d}", {"name": f"n{i}", "score": float(i), "clip": [i, i]})
        for i in range(12)
    ])  # fmt: skip
    return server


def test_soft_delete_hides_values_and_restore_brings_them_back(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "s", 1, b.delete_key("score"), b.delete_key("clip"))
    assert b.stored(loaded.metadata, "s", "u03")["u03"] == {"name": "n3"}
    with pytest.raises(grpc.RpcError) as caught:
        apply(loaded, b.metadata_update("u03", {"score": 1.0}))
    assert b.field_violations(caught.value).keys() == {'updates[0].metadata["score"]'}
    # Replacing the record keeps the hidden values, so a restore can bring them back.
    apply(loaded, b.metadata_update("u03", {"name": "renamed"}, mpb.UPDATE_MODE_REPLACE))
    b.update_schema(loaded.registry, "s", 2, b.restore_key("score"), b.restore_key("clip"))
    assert b.stored(loaded.metadata, "s", "u03")["u03"] == {
        "name": "renamed", "score": 3.0, "clip": [3.0, 3.0]}  # fmt: skip


@pytest.mark.parametrize("soft_first", [False, True])
def test_hard_delete_purges_every_stored_value(loaded: RunningServer, soft_first: bool) -> None:
    version = 1
    if soft_first:
        b.update_schema(loaded.registry, "s", version, b.delete_key("score"))
        version += 1
    response = b.update_schema(loaded.registry, "s", version, b.delete_key("score", hard=True),
                               b.delete_key("clip", hard=True))  # fmt: skip
    assert dict(response.impact.purged_records_by_key) == {"score": 12, "clip": 12}
    assert all('"score"' not in text for text in raw_rows(loaded).values())
    assert embedding_keys(loaded) == []
    record = loaded.metadata.GetMetadata(
        mpb.GetMetadataRequest(schema="s", data_unit_ids=["u05"])).records[0]  # fmt: skip
    assert dict(record.metadata).keys() == {"name"}
    assert record.revision == 2  # the purge changed the record


def test_type_change_that_invalidates_records_is_refused(loaded: RunningServer) -> None:
    apply(loaded, b.metadata_update("u05", {"name": "x" * 20}))
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(loaded.registry, "s", 1, b.set_scalar("score", "text"),
                        b.set_scalar("name", "varchar", max_length=5))  # fmt: skip
    error = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "12 stored record(s) would become invalid" in error.details()
    assert "u00, u01, u02, u03, u04, u05, u06, u07, u08, u09" in error.details()  # 10 samples
    assert "u10" not in error.details()
    impact = next(d for d in b.details(error) if isinstance(d, spb.SchemaImpact))
    assert dict(impact.invalid_records_by_key) == {"score": 12, "name": 1}
    assert len(impact.sample_data_unit_ids) == 10
    failure = next(d for d in b.details(error)
                   if isinstance(d, error_details_pb2.PreconditionFailure))  # fmt: skip
    assert {v.subject for v in failure.violations} == {'metadata["score"]', 'metadata["name"]'}
    assert b.get_schema(loaded.registry, "s").version == 1


def test_validate_only_reports_the_impact_without_writing(loaded: RunningServer) -> None:
    preview = b.update_schema(loaded.registry, "s", 1, b.set_scalar("name", "varchar", 1),
                              validate_only=True)  # fmt: skip
    assert preview.impact.invalid_records == 12
    assert len(preview.impact.sample_data_unit_ids) == 10
    assert preview.changed
    assert b.get_schema(loaded.registry, "s").version == 1
    assert b.stored(loaded.metadata, "s", "u07")["u07"]["name"] == "n7"


def test_force_commits_and_removes_only_the_invalid_values(loaded: RunningServer) -> None:
    apply(loaded, b.metadata_update("u05", {"name": "toolong"}))
    response = b.update_schema(loaded.registry, "s", 1, b.set_scalar("name", "varchar", 3),
                               force=True)  # fmt: skip
    assert response.schema.version == 2
    assert response.impact.invalid_records == 1
    got = b.stored(loaded.metadata, "s", "u05", "u06")
    assert "name" not in got["u05"]
    assert got["u06"]["name"] == "n6"


def test_valid_values_are_normalised_to_the_new_type(server: RunningServer) -> None:
    b.update_schema(server.registry, "s", 0, b.add_scalar("id", "varchar"),
                    b.add_scalar("at", "text"))  # fmt: skip
    uuid = "0B5D2F7E-3C1A-4E9B-8F6D-2A7C9E1B4D30"
    apply(server, b.metadata_update("u", {"id": uuid, "at": "2024-05-01T12:00:00+02:00"}))
    response = b.update_schema(server.registry, "s", 1, b.set_scalar("id", "uuid"),
                               b.set_scalar("at", "datetime"))  # fmt: skip
    assert response.impact.invalid_records == 0
    assert b.stored(server.metadata, "s", "u")["u"] == {
        "id": uuid.lower(), "at": "2024-05-01T10:00:00.000000Z"}  # fmt: skip


def test_declaring_a_key_checks_undeclared_values(server: RunningServer) -> None:
    b.update_schema(server.registry, "s", 0, b.set_options(True), b.add_scalar("a", "text"))
    apply(server, b.metadata_update("u1", {"extra": "abc"}),
          b.metadata_update("u2", {"extra": 2.0}))  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(server.registry, "s", 1, b.add_scalar("extra", "number"))
    assert "1 stored record(s) would become invalid" in caught.value.details()
    assert "u1" in caught.value.details()


def test_disallowing_unknown_keys_checks_stored_records(server: RunningServer) -> None:
    b.update_schema(server.registry, "s", 0, b.set_options(True), b.add_scalar("a", "text"))
    apply(server, b.metadata_update("u1", {"a": "x", "extra": "abc"}),
          b.metadata_update("u2", {"a": "y"}))  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(server.registry, "s", 1, b.set_options(False))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert '"extra": 1' in caught.value.details()
    b.update_schema(server.registry, "s", 1, b.set_options(False), force=True)
    assert b.stored(server.metadata, "s", "u1")["u1"] == {"a": "x"}


def test_soft_deleted_scalar_restored_with_a_new_type_is_checked(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "s", 1, b.delete_key("score"))
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(loaded.registry, "s", 2, b.set_scalar("score", "boolean"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    response = b.update_schema(loaded.registry, "s", 2, b.set_scalar("score", "number"))
    assert response.impact.invalid_records == 0
    assert b.stored(loaded.metadata, "s", "u04")["u04"]["score"] == 4.0
