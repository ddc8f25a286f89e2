"""ApplyBundle: modes, atomicity, partial bundles, ordering, revisions and idempotency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from metareg.server.app import Config, create_server
from metareg.v1 import metadata_pb2 as mpb

from . import builders as b
from .conftest import CHANNEL_OPTIONS, RunningServer

MERGE, REPLACE, KEEP = mpb.UPDATE_MODE_MERGE, mpb.UPDATE_MODE_REPLACE, mpb.UPDATE_MODE_KEEP_EXISTING
APPLIED, UNCHANGED = mpb.UPDATE_OUTCOME_APPLIED, mpb.UPDATE_OUTCOME_UNCHANGED
REJECTED, NOT_APPLIED = mpb.UPDATE_OUTCOME_REJECTED, mpb.UPDATE_OUTCOME_NOT_APPLIED


@pytest.fixture
def cams(server: RunningServer) -> RunningServer:
    b.update_schema(
        server.registry, "cams", 0,
        b.add_scalar("a", "varchar"), b.add_scalar("n", "number"), b.add_scalar("t", "text"),
        b.add_embedding("v", 3),
    )  # fmt: skip
    return server


def apply(server: RunningServer, *updates: mpb.MetadataUpdate, **flags: Any
          ) -> mpb.ApplyBundleResponse:  # fmt: skip
    return server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates=updates, **flags)
    )


def records(server: RunningServer, *ids: str) -> dict[str, mpb.StoredRecord]:
    response = server.metadata.GetMetadata(mpb.GetMetadataRequest(schema="cams", data_unit_ids=ids))
    return {r.data_unit_id: r for r in response.records}


def table_dump(database_url: str) -> list[Any]:
    """Every row of the data tables, for before/after comparisons."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                sorted(tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {t}")))
                for t in ("metadata_records", "metadata_embeddings", "idempotency_keys")
            ]
    finally:
        engine.dispose()


def test_merge_replace_and_keep_existing(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u", {"a": "x", "n": 1.0, "v": [1.0, 2.0, 3.0]}))
    apply(cams, b.metadata_update("u", {"n": None, "t": "new"}, MERGE))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"a": "x", "t": "new", "v": [1, 2, 3]}
    apply(cams, b.metadata_update("u", {"a": "kept?", "n": 5.0}, KEEP))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {
        "a": "x", "t": "new", "n": 5.0, "v": [1, 2, 3]}  # fmt: skip
    apply(cams, b.metadata_update("u", {"t": "only", "n": None}, REPLACE))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"t": "only"}


def test_an_atomic_bundle_with_one_bad_update_writes_nothing(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u0", {"a": "before"}))
    before = table_dump(cams.database_url)
    with pytest.raises(grpc.RpcError) as caught:
        apply(
            cams,
            b.metadata_update("u0", {"a": "changed"}),
            b.metadata_update("u1", {"n": "not a number"}),
            b.metadata_update("u2", {"v": [1.0]}),
            b.metadata_update("u3", {"a": "fine"}),
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing was written: 2 of 4 updates are invalid" in error.details()
    assert set(b.field_violations(error)) == {'updates[1].metadata["n"]',
                                              'updates[2].metadata["v"]'}  # fmt: skip
    (rejection,) = [d for d in b.details(error) if isinstance(d, mpb.BundleRejection)]
    assert [(r.index, r.outcome) for r in rejection.results] == [(1, REJECTED), (2, REJECTED)]
    assert table_dump(cams.database_url) == before


def test_a_partial_bundle_commits_the_valid_updates(cams: RunningServer) -> None:
    response = apply(
        cams,
        b.metadata_update("u1", {"a": "ok"}),
        b.metadata_update("u2", {"n": "bad"}),
        b.metadata_update("u3", {"n": 3.0}),
        partial=True,
    )
    assert [r.outcome for r in response.results] == [APPLIED, REJECTED, APPLIED]
    assert (response.applied_count, response.rejected_count) == (2, 1)
    assert response.results[1].violations[0].field == 'updates[1].metadata["n"]'
    assert sorted(records(cams, "u1", "u2", "u3")) == ["u1", "u3"]


def test_updates_to_one_data_unit_apply_in_order(cams: RunningServer) -> None:
    response = apply(
        cams,
        b.metadata_update("u", {"a": "1", "n": 1.0}),
        b.metadata_update("u", {"a": "2"}),
        b.metadata_update("u", {"n": None}, MERGE),
        b.metadata_update("u", {"a": "ignored", "t": "t"}, KEEP),
    )
    assert [r.revision for r in response.results] == [1, 2, 3, 4]
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"a": "2", "t": "t"}
    assert records(cams, "u")["u"].revision == 4


def test_partial_bundles_chain_over_rejected_updates(cams: RunningServer) -> None:
    response = apply(
        cams,
        b.metadata_update("u", {"a": "1"}),
        b.metadata_update("u", {"a": "2", "n": "bad"}),
        b.metadata_update("u", {"n": 2.0}),
        partial=True,
    )
    assert [r.outcome for r in response.results] == [APPLIED, REJECTED, APPLIED]
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"a": "1", "n": 2.0}


def test_revisions_versions_and_timestamps(cams: RunningServer) -> None:
    first = apply(cams, b.metadata_update("u", {"a": "x"}))
    assert (first.schema_version, first.results[0].revision) == (1, 1)
    same = apply(cams, b.metadata_update("u", {"a": "x"}))
    assert (same.results[0].outcome, same.results[0].revision) == (UNCHANGED, 1)
    b.update_schema(cams.registry, "cams", 1, b.add_scalar("extra", "boolean"))
    second = apply(cams, b.metadata_update("u", {"extra": True}))
    assert (second.schema_version, second.results[0].revision) == (2, 2)
    record = records(cams, "u")["u"]
    assert (record.revision, record.schema_version) == (2, 2)
    updated = record.updated_at.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - updated) < timedelta(minutes=1)


def test_embeddings_are_replaced_and_removed(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u", {"v": [1.0, 2.0, 3.0], "a": "x"}))
    apply(cams, b.metadata_update("u", {"v": [4.0, 5.0, 6.0]}))
    assert b.stored(cams.metadata, "cams", "u")["u"]["v"] == [4.0, 5.0, 6.0]
    apply(cams, b.metadata_update("u", {"v": None}))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"a": "x"}
    apply(cams, b.metadata_update("u", {"v": [7.0, 8.0, 9.0]}))
    apply(cams, b.metadata_update("u", {"a": "y"}, REPLACE))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"a": "y"}


def test_get_and_delete_metadata(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u1", {"a": "1", "v": [1.0, 1.0, 1.0]}),
          b.metadata_update("u2", {"a": "2"}))  # fmt: skip
    got = cams.metadata.GetMetadata(
        mpb.GetMetadataRequest(schema="cams", data_unit_ids=["u2", "zz", "u1", "u2"])
    )
    assert [r.data_unit_id for r in got.records] == ["u2", "u1"]
    assert list(got.missing_data_unit_ids) == ["zz"]
    deleted = cams.metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["u1", "zz"])
    )
    assert (deleted.deleted_count, list(deleted.missing_data_unit_ids)) == (1, ["zz"])
    assert sorted(records(cams, "u1", "u2")) == ["u2"]
    assert table_dump(cams.database_url)[1] == []  # the embedding went with its record
    apply(cams, b.metadata_update("u1", {"a": "again"}))
    assert records(cams, "u1")["u1"].revision == 1


# --- idempotency ---------------------------------------------------------------------


def test_a_retry_with_the_same_key_applies_nothing(cams: RunningServer) -> None:
    updates = [b.metadata_update("u1", {"a": "x"}), b.metadata_update("u1", {"n": 2.0}),
               b.metadata_update("u2", {"t": "y"})]  # fmt: skip
    first = apply(cams, *updates, idempotency_key="bundle-7")
    assert not first.replayed
    before = table_dump(cams.database_url)
    again = apply(cams, *updates, idempotency_key="bundle-7")
    assert again.replayed
    assert list(again.results) == list(first.results)
    assert table_dump(cams.database_url) == before  # no revision bump, nothing written
    assert records(cams, "u1")["u1"].revision == 2


def test_the_same_key_with_other_content_is_refused(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u1", {"a": "x"}), idempotency_key="k")
    with pytest.raises(grpc.RpcError) as caught:
        apply(cams, b.metadata_update("u1", {"a": "different"}), idempotency_key="k")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'idempotency key "k" was already used' in caught.value.details()
    assert b.stored(cams.metadata, "cams", "u1")["u1"] == {"a": "x"}


def test_a_rejected_bundle_does_not_consume_its_key(cams: RunningServer) -> None:
    with pytest.raises(grpc.RpcError):
        apply(cams, b.metadata_update("u1", {"n": "bad"}), idempotency_key="k")
    response = apply(cams, b.metadata_update("u1", {"n": 1.0}), idempotency_key="k")
    assert not response.replayed


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(database_url: str) -> Iterator[tuple[RunningServer, Clock]]:
    clock = Clock()
    server, port = create_server(Config(database_url=database_url, port=0), clock=clock)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
    try:
        yield RunningServer(f"127.0.0.1:{port}", port, server, channel, database_url), clock
    finally:
        channel.close()
        server.stop(None)


def test_keys_are_kept_for_24_hours(clocked: tuple[RunningServer, Clock]) -> None:
    server, clock = clocked
    b.update_schema(server.registry, "cams", 0, b.add_scalar("a", "varchar"))
    update = b.metadata_update("u", {"a": "x"})
    apply(server, update, idempotency_key="k")
    clock.now += timedelta(hours=23, minutes=59)
    assert apply(server, update, idempotency_key="k").replayed
    clock.now += timedelta(minutes=2)
    fresh = apply(server, b.metadata_update("u", {"a": "y"}), idempotency_key="k")
    assert not fresh.replayed
    assert fresh.results[0].revision == 2


# --- failures inside the write path -----------------------------------------------------


@pytest.mark.parametrize("where", ["half-way through the new records", "after every row"])
def test_a_failure_inside_the_write_path_leaves_the_database_unchanged(
    cams: RunningServer, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from metareg.server.storage import bulk, index, pgcopy

    apply(cams, *[b.metadata_update(f"old{i}", {"a": "x"}) for i in range(10)])
    before = table_dump(cams.database_url)
    failed: list[str] = []

    def fail_half_way(real: Any) -> Any:
        def insert(session: Any, *args: Any, **kwargs: Any) -> Any:
            table, columns_or_rows, *rest = args
            if len(args) == 2:  # bulk.executemany(session, statement, rows)
                rows, head = columns_or_rows, [table]
            else:  # copy_new / copy_insert / executemany_rows(session, target, columns, rows, …)
                rows, head, rest = rest[0], [table, columns_or_rows], rest[1:]
            if len(rows) == 20:  # the new records (SQLite: executemany; PostgreSQL: COPY)
                real(session, *head, rows[:10], *rest, **kwargs)
                failed.append("records")
                raise RuntimeError("disk on fire")
            return real(session, *args, **kwargs)

        return insert

    def fail_at_the_end(*_args: Any, **_kwargs: Any) -> None:
        failed.append("index")
        raise RuntimeError("disk on fire")

    if where == "after every row":
        monkeypatch.setattr(index, "add_entries", fail_at_the_end)
    else:
        monkeypatch.setattr(bulk, "executemany", fail_half_way(bulk.executemany))
        monkeypatch.setattr(bulk, "executemany_rows", fail_half_way(bulk.executemany_rows))
        monkeypatch.setattr(pgcopy, "copy_insert", fail_half_way(pgcopy.copy_insert))
        monkeypatch.setattr(pgcopy, "copy_new", fail_half_way(pgcopy.copy_new))
    updates = [b.metadata_update(f"new{i}", {"a": "y", "v": [1.0, 2.0, 3.0]}) for i in range(20)]
    updates += [b.metadata_update(f"old{i}", {"a": "changed"}) for i in range(10)]
    with pytest.raises(grpc.RpcError) as caught:
        apply(cams, *updates)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert len(failed) == 1
    assert table_dump(cams.database_url) == before


def test_a_bundle_whose_caller_is_gone_before_the_commit_writes_nothing(
    cams: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its deadline the client sees DEADLINE_EXCEEDED; the server must not commit
    later behind its back (a retry without an idempotency key would apply twice)."""
    from metareg.server.storage import records as records_module

    real = records_module.write_records
    finished = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(records_module, "write_records", slow)
    before = table_dump(cams.database_url)
    with pytest.raises(grpc.RpcError) as caught:
        cams.metadata.ApplyBundle(
            mpb.ApplyBundleRequest(schema="cams", updates=[b.metadata_update("late", {"a": "x"})]),
            timeout=0.3,
        )
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert finished.wait(10)
    time.sleep(0.5)  # the handler's commit (or rollback) right after the write
    assert table_dump(cams.database_url) == before
    monkeypatch.undo()
    assert apply(cams, b.metadata_update("late", {"a": "x"})).applied_count == 1
