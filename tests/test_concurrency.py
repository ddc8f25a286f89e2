"""Concurrent writers never lose an update: UpdateSchema versions and ApplyBundle records."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

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


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # COPY is PostgreSQL's
def test_copying_a_record_another_transaction_created_is_a_concurrent_write(
    database_url: str,
) -> None:
    """PostgreSQL copies new records straight into the table; a taken key must retry."""
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


def _in_the_window(run: Any, threads: list[threading.Thread]) -> None:
    """The first time: start `run` and give it two seconds, time to commit unless a lock
    holds it back. Later calls (retries, `run`'s own reads) go straight on."""
    if threads:
        return
    threads.append(threading.Thread(target=run))
    threads[0].start()
    threads[0].join(timeout=2.0)


def test_a_bundle_racing_a_delete_leaves_no_index_entry_behind(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete reads the record, a bundle changes its indexed value, the delete goes on.

    The delete locks what it reads, so the bundle waits, finds the record gone and
    creates it again; the index then holds exactly the values of stored records.
    """
    from metareg.server.storage import records as records_module

    b.update_schema(server.registry, "s", 0, b.spb.SchemaChange(
        add_scalar=b.spb.AddScalar(key="color", type="varchar", indexed=True)))  # fmt: skip
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
        schema="s", updates=[b.metadata_update("u1", {"color": "red"})]))  # fmt: skip
    real = records_module.load_scalars
    threads: list[threading.Thread] = []

    def paint_blue() -> None:
        update = b.metadata_update("u1", {"color": "blue"})
        server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=[update]))

    def read_then_race(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        _in_the_window(paint_blue, threads)
        return found

    monkeypatch.setattr(records_module, "load_scalars", read_then_race)
    deleted = server.metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="s", data_unit_ids=["u1"])
    )
    threads[0].join()
    monkeypatch.undo()
    assert deleted.deleted_count == 1
    stored = b.stored(server.metadata, "s", "u1")
    for color in ("red", "blue"):
        counted = server.metadata.CountMetadata(
            mpb.CountMetadataRequest(schema="s", filter=f'color = "{color}"')
        ).count
        holding = sum(1 for values in stored.values() if values.get("color") == color)
        assert counted == holding, (color, counted, stored)


def test_update_by_filter_patches_only_records_that_still_match(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle moves a matched record out of the filter before UpdateByFilter reads it."""
    from metareg.server.storage import records as records_module

    b.update_schema(server.registry, "s", 0, b.add_scalar("status", "varchar"),
                    b.add_scalar("flag", "varchar"))  # fmt: skip
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
        schema="s", updates=[b.metadata_update("u1", {"status": "pending"})]))  # fmt: skip
    real = records_module.load_records
    bundle: list[mpb.ApplyBundleResponse] = []
    threads: list[threading.Thread] = []

    def finish() -> None:
        update = b.metadata_update("u1", {"status": "done"})
        bundle.append(
            server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=[update]))
        )

    def race_then_read(*args: Any, **kwargs: Any) -> Any:
        _in_the_window(finish, threads)  # the first call is UpdateByFilter's, after its match
        return real(*args, **kwargs)

    monkeypatch.setattr(records_module, "load_records", race_then_read)
    patched = server.metadata.UpdateByFilter(mpb.UpdateByFilterRequest(
        schema="s", filter='status = "pending"', metadata={"flag": b.value("retry")}))  # fmt: skip
    threads[0].join()
    monkeypatch.undo()
    # Serial in one order or the other: the patch only ever lands on a pending record.
    bundle_first = bundle[0].results[0].revision == 2
    assert patched.updated_count == (0 if bundle_first else 1)
    expected = {"status": "done"} if bundle_first else {"status": "done", "flag": "retry"}
    assert b.stored(server.metadata, "s", "u1") == {"u1": expected}
