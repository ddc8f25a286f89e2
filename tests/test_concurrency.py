"""Concurrent writers never lose an update: UpdateSchema versions and ApplyBundle records."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import grpc
import pytest

from metareg.server.domain.errors import ConcurrentWrite
from metareg.server.storage import pgcopy
from metareg.server.storage.database import Database
from metareg.server.storage.records import records
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb
from metareg.v1 import schema_registry_pb2_grpc

from . import builders as b
from .conftest import RunningServer

WRITERS = 8


def race(server: RunningServer, name: str, expected: int, round_: int) -> list[grpc.StatusCode]:
    """WRITERS clients, each on its own channel, save against `expected` at once."""
    barrier = threading.Barrier(WRITERS)
    codes: list[grpc.StatusCode] = [grpc.StatusCode.UNKNOWN] * WRITERS

    def save(index: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
            barrier.wait()
            try:
                b.update_schema(stub, name, expected, b.add_scalar(f"r{round_}w{index}", "number"))
                codes[index] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                codes[index] = error.code()

    threads = [threading.Thread(target=save, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


@pytest.mark.parametrize("rounds", [4])
def test_exactly_one_writer_wins_each_round(server: RunningServer, rounds: int) -> None:
    for round_ in range(rounds):  # round 0 races to create the schema
        codes = race(server, "contended", round_, round_)
        assert codes.count(grpc.StatusCode.OK) == 1, codes
        assert codes.count(grpc.StatusCode.ABORTED) == WRITERS - 1, codes
    history = server.registry.ListSchemaVersions(
        rpb.ListSchemaVersionsRequest(name="contended", page_size=100)
    )
    assert [v.version for v in history.versions] == list(range(rounds, 0, -1))
    latest = b.get_schema(server.registry, "contended")
    assert latest.version == rounds
    assert len(latest.keys) == rounds  # one winning key per round, none lost
    for version in range(1, rounds + 1):
        assert len(b.get_schema(server.registry, "contended", version).keys) == version


BUNDLE_WRITERS = 3  # each loses at most BUNDLE_WRITERS - 1 races: within the 4 attempts


def test_concurrent_bundles_creating_the_same_records_all_apply_whole(
    server: RunningServer,
) -> None:
    """Each bundle reads the records as absent; all but one then find them taken.

    Those retry as updates, so every record ends at revision BUNDLE_WRITERS and holds
    the values of one and the same bundle: bundles are applied one after another,
    whole, never interleaved.
    """
    b.update_schema(server.registry, "race", 0, b.add_scalar("writer", "varchar"),
                    b.add_embedding("v", 2))  # fmt: skip
    ids = [f"unit-{i:03d}" for i in range(200)]
    barrier = threading.Barrier(BUNDLE_WRITERS)
    results: list[object] = [None] * BUNDLE_WRITERS

    def write(index: int) -> None:
        request = mpb.ApplyBundleRequest(
            schema="race",
            updates=[b.metadata_update(d, {"writer": f"w{index}", "v": [index, 1.0]}) for d in ids],
        )
        with grpc.insecure_channel(server.address) as channel:
            stub = b.metadata_stub(channel)
            barrier.wait()
            try:
                results[index] = stub.ApplyBundle(request)
            except grpc.RpcError as error:
                results[index] = error.code()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(BUNDLE_WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, mpb.ApplyBundleResponse) for r in results), results
    revisions = [{u.revision for u in r.results} for r in results]  # type: ignore[attr-defined]
    assert all(len(each) == 1 for each in revisions), revisions  # a bundle applies whole
    # and one after another: the bundles took revisions 1, 2 and 3 of every record
    assert sorted(r for (r,) in revisions) == list(range(1, BUNDLE_WRITERS + 1))
    response = server.metadata.GetMetadata(mpb.GetMetadataRequest(schema="race", data_unit_ids=ids))
    assert {r.revision for r in response.records} == {BUNDLE_WRITERS}
    last = {r.metadata["writer"].string_value for r in response.records}
    assert len(last) == 1, last
    (winner,) = last
    assert {tuple(r.metadata["v"].embedding_value.values) for r in response.records} == {
        (float(winner[1:]), 1.0)
    }


def test_copying_a_record_another_transaction_created_is_a_concurrent_write(
    database_url: str, backend: str
) -> None:
    """PostgreSQL copies new records straight into the table; a taken key must retry."""
    if backend != "postgresql":
        pytest.skip("COPY is the PostgreSQL write path")
    db = Database(database_url)
    try:
        with db.session(write=True) as session:
            session.connection().exec_driver_sql(
                "INSERT INTO schemas (id, name, latest_version, created_at, updated_at) "
                "VALUES (1, 's', 0, now(), now())"
            )
        now = datetime.now(UTC)
        columns = ("schema_id", "data_unit_id", "data", "schema_version", "revision", "updated_at")
        with db.session(write=True) as session:
            pgcopy.copy_new(session, records, columns, [(1, "a", "{}", 1, 1, now)])
        with (
            pytest.raises(ConcurrentWrite, match="metadata_records"),
            db.session(write=True) as session,
        ):
            pgcopy.copy_new(
                session, records, columns, [(1, "b", "{}", 1, 1, now), (1, "a", "{}", 1, 1, now)]
            )
        with db.session() as session:
            stored = session.connection().exec_driver_sql(
                "SELECT data_unit_id FROM metadata_records ORDER BY 1"
            )
            assert [row[0] for row in stored] == ["a"]  # "b" went with the failed COPY
    finally:
        db.dispose()
