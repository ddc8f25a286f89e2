"""Defects found by probing the running service, each pinned by a test on real servers."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2
from sqlalchemy import event
from sqlalchemy.engine import Engine

from metareg.server.domain.errors import ConcurrentWrite, StorageUnavailable
from metareg.server.domain.schema import MAX_DECLARED_KEYS
from metareg.server.storage import records as records_module
from metareg.server.storage.database import DatabaseFault, translate_driver_error
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer
from .pgcluster import Cluster

# --- schema changes over the largest schemas scan stored records ---------------------

KEYS = [f"k{number:04d}" for number in range(MAX_DECLARED_KEYS)]
DOTTED = KEYS[700] = "team.k 0700"  # dots and spaces: a JSON path would need quoting


def apply(server: RunningServer, schema: str, *updates: mpb.MetadataUpdate) -> None:
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema=schema, updates=updates))


@pytest.fixture
def wide(server: RunningServer) -> RunningServer:
    """Schema "wide": k0000 declared, unknown keys allowed, three records holding
    values that declaring the other 1023 keys re-checks."""
    b.update_schema(server.registry, "wide", 0, b.add_scalar("k0000", "varchar"),
                    b.set_options(allow_unknown_keys=True))  # fmt: skip
    apply(server, "wide",
          b.metadata_update("u1", {"k0000": "a", DOTTED: "not a number"}),
          b.metadata_update("u2", {"k0000": "b", "k1023": 5.0}),
          b.metadata_update("u3", {"k0000": "c", "extra": "x"}))  # fmt: skip
    return server


def test_declaring_1023_keys_at_once_scans_the_stored_records(wide: RunningServer) -> None:
    numbers = [b.add_scalar(key, "number") for key in KEYS[1:]]
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(wide.registry, "wide", 1, *numbers)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "1 stored record(s) would become invalid" in str(caught.value.details())
    assert "sample data_unit_ids: u1" in str(caught.value.details())
    forced = b.update_schema(wide.registry, "wide", 1, *numbers, force=True)
    assert (forced.schema.version, forced.impact.invalid_records) == (2, 1)
    assert b.stored(wide.metadata, "wide", "u1", "u2") == {
        "u1": {"k0000": "a"}, "u2": {"k0000": "b", "k1023": 5.0}}  # fmt: skip

    # Every one of the 1024 keys changes type: the check scans all of them.
    retyped = b.update_schema(wide.registry, "wide", 2, *[b.set_scalar(k, "varchar") for k in KEYS],
                              validate_only=True)  # fmt: skip
    assert (retyped.impact.invalid_records, dict(retyped.impact.invalid_records_by_key)) == (
        1, {"k1023": 1})  # fmt: skip

    # Unknown keys stop being allowed with 1024 declared: "extra" is the one outside.
    closed = b.update_schema(wide.registry, "wide", 2, b.set_options(allow_unknown_keys=False),
                             validate_only=True)  # fmt: skip
    assert list(closed.impact.sample_data_unit_ids) == ["u3"]

    b.update_schema(wide.registry, "wide", 2, *[b.delete_key(k) for k in KEYS])
    assert b.stored(wide.metadata, "wide", "u2")["u2"] == {}
    b.update_schema(wide.registry, "wide", 3, *[b.restore_key(k) for k in KEYS])
    assert b.stored(wide.metadata, "wide", "u2")["u2"] == {"k0000": "b", "k1023": 5.0}


def test_importing_a_1024_key_document_over_stored_records(wide: RunningServer) -> None:
    document = struct_pb2.Struct()
    document.update(dict.fromkeys(KEYS[1:], "number") | {"k0000": "varchar"})
    request = rpb.ImportSchemaRequest(name="wide", expected_version=1, document=document)
    with pytest.raises(grpc.RpcError) as caught:
        wide.registry.ImportSchema(request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    request.force = True
    imported = wide.registry.ImportSchema(request)
    assert len(imported.schema.keys) == MAX_DECLARED_KEYS
    assert dict(imported.impact.invalid_records_by_key) == {DOTTED: 1}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_statement_sqlite_refuses_is_internal_not_unavailable(
    wide: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old scan (one OR term per key) fails the same way on every retry: a bug."""
    monkeypatch.setattr(records_module, "KEYS_LOOKED_UP_BY_PATH", MAX_DECLARED_KEYS)
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(wide.registry, "wide", 1, *[b.add_scalar(k, "number") for k in KEYS[1:]])
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "incident" in str(caught.value.details())


def sqlite_error(database: Path, sql: str, parameters: Any = ()) -> sqlite3.Error:
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 1000)  # this build allows 250,000
    try:
        connection.execute(sql, parameters)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"{sql[:40]} did not fail")


def test_deterministic_sqlite_errors_are_faults_and_unavailability_is_not(tmp_path: Path) -> None:
    database = tmp_path / "probe.db"
    deep = "SELECT " + " OR ".join(["1"] * 1001)
    many = "SELECT 1 WHERE 1 IN (" + ",".join(["?"] * 1001) + ")"  # too many SQL variables
    for sql, parameters in ((deep, ()), (many, [1] * 1001), ("SELECT * FROM nowhere", ()),
                            ("SELEC 1", ()), ("SELECT ?", (1, 2))):  # fmt: skip
        error = sqlite_error(database, sql, parameters)
        assert isinstance(translate_driver_error(error), DatabaseFault), error

    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    locked = sqlite_error(database, "BEGIN IMMEDIATE")
    holder.close()
    assert isinstance(translate_driver_error(locked), ConcurrentWrite)
    try:
        sqlite3.connect(tmp_path / "missing" / "x.db").execute("SELECT 1")
    except sqlite3.OperationalError as error:
        cannot_open = error
    assert isinstance(translate_driver_error(cannot_open), StorageUnavailable)
    # An I/O error cannot be caused on demand; this is what sqlite3 raises for one.
    disk = sqlite3.OperationalError("disk I/O error")
    disk.sqlite_errorcode, disk.sqlite_errorname = 10 | (3 << 8), "SQLITE_IOERR_WRITE"  # type: ignore[attr-defined]
    assert isinstance(translate_driver_error(disk), StorageUnavailable)


def test_deterministic_postgresql_errors_are_faults_and_unavailability_is_not(
    pg_cluster: Cluster,
) -> None:
    import psycopg

    def error_of(sql: str) -> psycopg.Error:
        address = {"host": pg_cluster.host, "port": pg_cluster.port, "user": pg_cluster.user}
        with (
            psycopg.connect(**address, dbname="postgres") as connection,
            pytest.raises(psycopg.Error) as caught,
        ):
            connection.execute(sql)  # type: ignore[call-overload]
        return caught.value

    too_many_arguments = "SELECT concat(" + ",".join(["1"] * 101) + ")"  # SQLSTATE 54023
    for sql in (too_many_arguments, "SELECT * FROM nowhere", "SELEC 1", "SELECT 1/0"):
        assert isinstance(translate_driver_error(error_of(sql)), DatabaseFault), sql
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=1, connect_timeout=5)
    assert isinstance(translate_driver_error(refused.value), StorageUnavailable)


# --- filters: a number beyond the doubles is an error at its column -------------------


@pytest.fixture
def numbers(server: RunningServer) -> RunningServer:
    b.update_schema(server.registry, "nums", 0, b.add_scalar("n", "number"))
    apply(server, "nums", b.metadata_update("u1", {"n": 1e308}))
    return server


@pytest.mark.parametrize("literal", ["1e309", "-1e309", "1" + "0" * 309])
def test_a_filter_number_beyond_the_doubles_is_invalid_argument_at_its_column(
    numbers: RunningServer, literal: str
) -> None:
    calls = (
        (numbers.metadata.CountMetadata, mpb.CountMetadataRequest),
        (numbers.metadata.QueryMetadata, mpb.QueryMetadataRequest),
        (numbers.metadata.UpdateByFilter, mpb.UpdateByFilterRequest),
    )
    for call, request in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call(request(schema="nums", filter=f"n > {literal}"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(caught.value.details()).startswith("filter error at column 5: the number")
        assert b.field_violations(caught.value).keys() == {"filter"}
    largest = mpb.CountMetadataRequest(schema="nums", filter="n < 1.7976931348623157e308")
    assert numbers.metadata.CountMetadata(largest).count == 1


# --- -0.0 is stored and returned as 0.0 on both backends (embeddings keep their sign) ---


def stored_json(server: RunningServer) -> list[str]:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT CAST(data AS TEXT) FROM metadata_records"))
            return sorted(rows.scalars())
    finally:
        engine.dispose()


def test_negative_zero_is_stored_and_returned_as_zero(server: RunningServer) -> None:
    indexed = b.add_scalar("n", "number")
    indexed.add_scalar.indexed = True
    b.update_schema(server.registry, "zero", 0, indexed, b.add_scalar("plain", "number"),
                    b.add_embedding("clip", 2))  # fmt: skip
    typed = {"n": -0.0, "plain": -0.0, "clip": [-0.0, 1.0]}
    apply(server, "zero", b.metadata_update("typed", typed))
    zeros = [b"-0.0", b"-0", b"-0e7", b"-1e-400", b"-0.000"]
    written = [b'{"data_unit_id": "json%d", "metadata": {"n": %s, "plain": %s}}' % (i, z, z)
               for i, z in enumerate(zeros)]  # fmt: skip
    server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="zero", updates_json=b"[" + b", ".join(written) + b"]")
    )
    ids = ["typed", *(f"json{i}" for i in range(len(written)))]
    for duid, values in b.stored(server.metadata, "zero", *ids).items():
        for key in ("n", "plain"):
            assert math.copysign(1.0, values[key]) == 1.0, (duid, key, values[key])  # type: ignore[arg-type]
    clip = b.stored(server.metadata, "zero", "typed")["typed"]["clip"]
    assert [math.copysign(1.0, x) for x in clip] == [-1.0, 1.0]  # type: ignore[union-attr]
    assert not any("-0" in text for text in stored_json(server))
    for text in ("n = 0", "n = -0", "n >= 0 AND n <= -0", "plain = 0"):
        request = mpb.CountMetadataRequest(schema="zero", filter=text)
        assert server.metadata.CountMetadata(request).count == len(ids), text
    ordered = server.metadata.QueryMetadata(
        mpb.QueryMetadataRequest(schema="zero", filter="n < 1", order_by="n", page_size=10)
    )
    assert len(ordered.records) == len(ids)
    assert all(str(r.metadata["n"].number_value) == "0.0" for r in ordered.records)

    # Undeclared keys and numbers coerced from strings go through the same number check.
    b.update_schema(server.registry, "open", 0, b.add_scalar("n", "number"),
                    b.set_options(allow_unknown_keys=True))  # fmt: skip
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
        schema="open", updates=[b.metadata_update("u", {"n": "-0", "other": -0.0})],
        coerce_strings=True))  # fmt: skip
    opened = b.stored(server.metadata, "open", "u")["u"]
    assert sorted(map(repr, opened.items())) == ["('n', 0.0)", "('other', 0.0)"]


@pytest.mark.parametrize(
    "member",
    [b'"n": -0.0', b'"n": -0', b'"n": -0e7', b'"n": -1e-400', b'"n": -1E-400', b'"n": 0.0',
     b'"n": -0.0, "m": [-0.0, 1, 2]', b'"d": "2024-05-01T10:00:00Z", "n": -0.0',
     b'"n": -5e-324', b'"n": -4e-324'],
)  # fmt: skip
def test_the_fast_path_stores_negative_zero_as_the_full_validator_does(member: bytes) -> None:
    from .test_fast_decoder import assert_sound

    raw = b'[{"data_unit_id": "r", "metadata": {' + member + b"}}]"
    assert assert_sound(raw)  # the same values, compared by repr


# --- a bundle whose deadline would pass before its commit is answered is not written ---


def written_ids(server: RunningServer) -> set[str]:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text("SELECT data_unit_id FROM metadata_records"))
                       .scalars())  # fmt: skip
    finally:
        engine.dispose()


def bundle_of(data_unit_id: str) -> mpb.ApplyBundleRequest:
    return mpb.ApplyBundleRequest(
        schema="late", updates=[b.metadata_update(data_unit_id, {"a": "x"})]
    )


@pytest.mark.parametrize("slow_part", ["commit", "answer"])
def test_a_bundle_whose_deadline_passes_during_its_commit_is_not_written(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, slow_part: str
) -> None:
    """The deadline is still running at the last check, but the commit (or the answer
    after it) takes longer than what is left: the client would see DEADLINE_EXCEEDED
    for a bundle that was written. The server has timed its commits and refuses."""
    from metareg.server.api import convert

    b.update_schema(server.registry, "late", 0, b.add_scalar("a", "varchar"))

    def slow_commit(connection: Any) -> None:
        if connection.get_execution_options().get("metareg_write"):
            time.sleep(0.4)

    if slow_part == "commit":
        event.listen(Engine, "commit", slow_commit)
    else:
        real = convert.add_results
        monkeypatch.setattr(convert, "add_results", lambda *a: (time.sleep(0.4), real(*a)))
    try:
        for number in range(2):  # the server learns what its commits cost now
            apply(server, "late", b.metadata_update(f"warm{number}", {"a": "x"}))
        with pytest.raises(grpc.RpcError) as caught:
            server.metadata.ApplyBundle(bundle_of("late"), timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.0)  # long enough for a commit to have ended
        assert written_ids(server) == {"warm0", "warm1"}
        # A deadline with room for the commit and its answer is met.
        server.metadata.ApplyBundle(bundle_of("roomy"), timeout=5)
        assert written_ids(server) == {"warm0", "warm1", "roomy"}
    finally:
        if slow_part == "commit":
            event.remove(Engine, "commit", slow_commit)


def test_the_commit_cost_estimate_rises_at_once_and_falls_gradually() -> None:
    from metareg.server.service.metadata import CommitCost

    cost = CommitCost(initial=0.010)
    assert cost.bound() == pytest.approx(0.030)
    cost.observe(0.400)
    assert cost.bound() > 0.400
    for _ in range(5):
        cost.observe(0.005)
    assert 0.030 < cost.bound() < 0.400
    for _ in range(100):
        cost.observe(0.005)
    assert cost.bound() == pytest.approx(0.005, abs=0.001)


def test_a_bundle_written_behind_a_deadline_is_applied_once_when_resent(
    server: RunningServer,
) -> None:
    """What README promises after DEADLINE_EXCEEDED: the bundle may have been written
    (here the commit is slower than anything this fresh server has seen), and resending
    it with its idempotency key applies it at most once and returns its result."""
    b.update_schema(server.registry, "late", 0, b.add_scalar("a", "varchar"))

    def slow_commit(connection: Any) -> None:
        if connection.get_execution_options().get("metareg_write"):
            time.sleep(0.4)

    apply(server, "late", b.metadata_update("first", {"a": "x"}))  # and the key purge is done
    request = mpb.ApplyBundleRequest(
        schema="late", updates=[b.metadata_update("u", {"a": "x"})], idempotency_key="k1"
    )
    event.listen(Engine, "commit", slow_commit)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            server.metadata.ApplyBundle(request, timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.0)
        assert written_ids(server) == {"first", "u"}
        resent = server.metadata.ApplyBundle(request, timeout=5)
    finally:
        event.remove(Engine, "commit", slow_commit)
    assert (resent.replayed, resent.applied_count, resent.results[0].revision) == (True, 1, 1)


# --- every database connection busy: UNAVAILABLE (retry), never INTERNAL ---------------


def test_a_call_that_finds_every_connection_busy_is_unavailable(database_url: str) -> None:
    """A crowd of scans once held every pooled connection: the next call waited out the
    pool's timeout and failed INTERNAL. It is UNAVAILABLE, which clients retry."""
    from metareg.server.domain.errors import StorageUnavailable
    from metareg.server.storage.database import Database

    database = Database(database_url, pool_size=1, pool_timeout=0.2)
    try:
        with database.session() as first, database.session() as second:
            first.execute(sa.text("SELECT 1"))
            second.execute(sa.text("SELECT 1"))
            with pytest.raises(StorageUnavailable, match="every database connection"):  # noqa: SIM117
                with database.session() as third:
                    third.execute(sa.text("SELECT 1"))
        with database.session() as again:  # and the pool recovers
            assert again.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()
