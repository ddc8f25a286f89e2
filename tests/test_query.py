"""Query paging under concurrent inserts, UpdateByFilter, and the index's life cycle."""

from __future__ import annotations

import random
import threading
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb

from . import builders as b
from .conftest import RunningServer


def set_indexed(key: str, indexed: bool = True) -> spb.SchemaChange:
    return spb.SchemaChange(set_indexed=spb.SetIndexed(key=key, indexed=indexed))


def indexed_scalar(key: str, type_: str) -> spb.SchemaChange:
    change = b.add_scalar(key, type_)
    change.add_scalar.indexed = True
    return change


def apply(server: RunningServer, *updates: mpb.MetadataUpdate) -> mpb.ApplyBundleResponse:
    return server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=updates))


def query(server: RunningServer, filter_text: str, order_by: str = "", size: int = 100,
          token: str = "") -> mpb.QueryMetadataResponse:  # fmt: skip
    return server.metadata.QueryMetadata(
        mpb.QueryMetadataRequest(
            schema="s", filter=filter_text, order_by=order_by, page_size=size, page_token=token
        )
    )


def count(server: RunningServer, filter_text: str) -> int:
    return server.metadata.CountMetadata(
        mpb.CountMetadataRequest(schema="s", filter=filter_text)).count  # fmt: skip


def index_rows(server: RunningServer) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            rows = []
            for table in ("metadata_index_number", "metadata_index_string"):
                rows += connection.execute(
                    sa.text(f"SELECT key, value, data_unit_id FROM {table}")).all()  # fmt: skip
            return sorted((tuple(r) for r in rows), key=repr)
    finally:
        engine.dispose()


@pytest.fixture
def loaded(server: RunningServer) -> RunningServer:
    b.update_schema(server.registry, "s", 0, indexed_scalar("cam", "varchar"),
                    indexed_scalar("q", "number"), b.add_scalar("note", "text"))  # fmt: skip
    rng = random.Random(7)
    apply(server, *[
        b.metadata_update(f"u{i:04d}", {"cam": f"c{i % 7}", "q": float(rng.randint(0, 50)),
                                        **({"note": "n"} if i % 3 else {})})
        for i in range(300)
    ])  # fmt: skip
    return server


@pytest.mark.parametrize(
    ("filter_text", "order_by"),
    [("q >= 10", "q"), ("q >= 10", "q desc"), ("", ""), ('note = "n"', ""),
     ('cam = "c3"', "q"), ("", "note"), ("q < 40", "")],
)  # fmt: skip
def test_paging_never_skips_or_repeats_while_records_are_inserted(
    loaded: RunningServer, filter_text: str, order_by: str
) -> None:
    everything = query(loaded, filter_text, order_by, size=1000).records
    before = {r.data_unit_id for r in everything}
    stop = threading.Event()
    inserted: list[str] = []

    def insert() -> None:
        rng = random.Random(1)
        with grpc.insecure_channel(loaded.address) as channel:
            stub = b.metadata_stub(channel)
            while not stop.is_set():
                duid = f"{rng.choice('abuz')}{rng.randint(0, 10**6):07d}"
                stub.ApplyBundle(
                    mpb.ApplyBundleRequest(
                        schema="s",
                        updates=[
                            b.metadata_update(
                                duid, {"cam": "c3", "q": float(rng.randint(0, 50)), "note": "n"}
                            )
                        ],
                    )
                )
                inserted.append(duid)

    writer = threading.Thread(target=insert)
    writer.start()
    seen: list[str] = []
    token = ""
    try:
        while True:
            page = query(loaded, filter_text, order_by, size=17, token=token)
            seen += [r.data_unit_id for r in page.records]
            token = page.next_page_token
            if not token:
                break
    finally:
        stop.set()
        writer.join()
    assert inserted, "the writer never ran"
    assert len(seen) == len(set(seen)), "a record was repeated"
    assert before <= set(seen), "a record was skipped"
    assert set(seen) <= before | set(inserted)


def test_pages_follow_the_requested_order(loaded: RunningServer) -> None:
    first = query(loaded, 'cam = "c1"', "q desc", size=5)
    values = [r.metadata["q"].number_value for r in first.records]
    assert values == sorted(values, reverse=True)
    rest = query(loaded, 'cam = "c1"', "q desc", size=1000, token=first.next_page_token)
    allq = values + [r.metadata["q"].number_value for r in rest.records]
    assert allq == sorted(allq, reverse=True)
    assert len(allq) == count(loaded, 'cam = "c1"')


def test_tokens_are_tied_to_their_query(loaded: RunningServer) -> None:
    token = query(loaded, "q > 3", "q", size=2).next_page_token
    for other in [("q > 4", "q"), ("q > 3", "q desc")]:
        with pytest.raises(grpc.RpcError) as caught:
            query(loaded, *other, size=2, token=token)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "another query" in caught.value.details()


def test_query_errors_are_invalid_argument_with_a_column(loaded: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        query(loaded, 'q > "ten"')
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("filter error at column 5:")
    assert b.field_violations(caught.value).keys() == {"filter"}
    (info,) = [d for d in b.details(caught.value) if d.DESCRIPTOR.name == "ErrorInfo"]
    assert (info.reason, info.domain) == ("INVALID_QUERY", "metareg.v1")
    assert dict(info.metadata) == {
        "field": "filter", "column": "5",
        "problem": 'key "q" has type number; compare it with a number, not a string',
    }  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        query(loaded, "", order_by="missing")
    assert b.field_violations(caught.value).keys() == {"order_by"}


# --- UpdateByFilter ------------------------------------------------------------------


def update_by_filter(server: RunningServer, filter_text: str, patch: dict[str, object],
                     **flags: Any) -> mpb.UpdateByFilterResponse:  # fmt: skip
    request = mpb.UpdateByFilterRequest(schema="s", filter=filter_text, **flags)
    for key, value in patch.items():
        request.metadata[key].CopyFrom(b.value(value))
    return server.metadata.UpdateByFilter(request)


def test_update_by_filter_applies_one_patch_to_every_match(loaded: RunningServer) -> None:
    matched = count(loaded, 'cam = "c2"')
    preview = update_by_filter(loaded, 'cam = "c2"', {"cam": "moved"}, validate_only=True)
    assert (preview.matched_count, preview.updated_count) == (matched, 0)
    assert count(loaded, 'cam = "moved"') == 0
    done = update_by_filter(loaded, 'cam = "c2"', {"cam": "moved", "q": None})
    assert (done.matched_count, done.updated_count) == (matched, matched)
    assert count(loaded, 'cam = "moved"') == matched  # the index follows the update
    assert count(loaded, 'cam = "c2"') == 0
    assert count(loaded, 'cam = "moved" AND q EXISTS') == 0
    record = query(loaded, 'cam = "moved"', size=1).records[0]
    assert record.revision == 2


def test_update_by_filter_is_atomic(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "s", 1, b.add_scalar("blob", "text"))
    apply(loaded, b.metadata_update("u0001", {"blob": "x" * 200_000}))
    before = query(loaded, "", size=1000)
    with pytest.raises(grpc.RpcError) as caught:
        update_by_filter(loaded, "q >= 0", {"note": "y" * 100_000}, mode=mpb.UPDATE_MODE_MERGE)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "u0001" in caught.value.details()  # only that record would grow too large
    assert query(loaded, "", size=1000) == before  # nothing was written
    with pytest.raises(grpc.RpcError) as caught:
        update_by_filter(loaded, "q >= 0", {"q": "not a number"})
    assert b.field_violations(caught.value).keys() == {'metadata["q"]'}


def test_update_by_filter_modes_and_limits(
    loaded: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    update_by_filter(loaded, 'cam = "c4"', {"note": "kept?", "q": 99.0},
                     mode=mpb.UPDATE_MODE_KEEP_EXISTING)  # fmt: skip
    assert count(loaded, "q = 99") == 0  # every c4 record already had q
    update_by_filter(loaded, 'cam = "c4"', {"cam": "c4"}, mode=mpb.UPDATE_MODE_REPLACE)
    assert count(loaded, 'cam = "c4" AND note EXISTS') == 0
    with pytest.raises(grpc.RpcError) as caught:
        update_by_filter(loaded, "", {"note": "all"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    from metareg.server.service import query as query_service

    monkeypatch.setattr(query_service, "MAX_UPDATE_BY_FILTER", 10)
    with pytest.raises(grpc.RpcError) as caught:
        update_by_filter(loaded, "q >= 0", {"note": "many"})
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "more than 10 records" in caught.value.details()


# --- the index through schema changes ------------------------------------------------------


def expected_rows(server: RunningServer, keys: dict[str, str]) -> list[tuple[Any, ...]]:
    """Index rows implied by the stored records, for the given key -> type."""
    records = query(server, "", size=1000).records
    rows = []
    for record in records:
        for key, kind in keys.items():
            if key in record.metadata:
                value = b.python_value(record.metadata[key])
                stored = float(value) if kind in ("number", "boolean") else value
                rows.append((key, stored, record.data_unit_id))
    return sorted(rows, key=repr)


def test_index_follows_schema_changes(loaded: RunningServer) -> None:
    reg = loaded.registry
    assert index_rows(loaded) == expected_rows(loaded, {"cam": "varchar", "q": "number"})
    b.update_schema(reg, "s", 1, set_indexed("note"))
    assert index_rows(loaded) == expected_rows(
        loaded, {"cam": "varchar", "q": "number", "note": "text"})  # fmt: skip
    b.update_schema(reg, "s", 2, set_indexed("cam", False))
    assert index_rows(loaded) == expected_rows(loaded, {"q": "number", "note": "text"})
    b.update_schema(reg, "s", 3, b.set_scalar("q", "text"), force=True)  # numbers purged
    assert count(loaded, "q EXISTS") == 0
    assert index_rows(loaded) == expected_rows(loaded, {"note": "text"})
    visible = expected_rows(loaded, {"note": "text"})
    b.update_schema(reg, "s", 4, b.delete_key("note"))
    assert index_rows(loaded) == visible  # kept while hidden, so a restore costs nothing
    b.update_schema(reg, "s", 5, b.delete_key("note", hard=True))
    assert index_rows(loaded) == []


def test_set_indexed_rules(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "s", 1, b.add_embedding("v", 2), b.delete_key("note"))
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(loaded.registry, "s", 2, set_indexed("v"), set_indexed("note"))
    assert b.field_violations(caught.value) == {
        "changes[0]": 'key "v": embedding keys cannot be indexed',
        "changes[1]": 'key "note" is soft-deleted; restore it first',
    }
    response = b.update_schema(loaded.registry, "s", 2, set_indexed("q", True))
    assert not response.changed  # already indexed
    assert b.keys_of(response.schema)["q"].indexed


def test_deleting_records_removes_their_index_entries(loaded: RunningServer) -> None:
    loaded.metadata.DeleteMetadata(
        mpb.DeleteMetadataRequest(schema="s", data_unit_ids=[f"u{i:04d}" for i in range(100)])
    )
    assert index_rows(loaded) == expected_rows(loaded, {"cam": "varchar", "q": "number"})
    assert count(loaded, "q >= 0") == 200


def test_range_comparisons_on_one_key_combine(loaded: RunningServer) -> None:
    assert count(loaded, "q = 10 AND q < 10") == 0
    assert count(loaded, "q >= 10 AND q <= 10") == count(loaded, "q = 10") > 0
    assert count(loaded, "q > 10 AND q < 20 AND q != 15") == count(
        loaded, "q >= 11 AND q <= 19"
    ) - (count(loaded, "q = 15"))
    first = query(loaded, "q >= 20 AND q < 30", "q", size=5)
    assert [r.metadata["q"].number_value for r in first.records] == sorted(
        r.metadata["q"].number_value for r in first.records
    )
    assert min(r.metadata["q"].number_value for r in first.records) >= 20


def test_big_records_are_read_in_responses_that_fit(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages and GetMetadata stop at a byte budget (here 1 MiB for 20 records of 100 KB)."""
    from metareg.client import Client
    from metareg.server.service import common

    monkeypatch.setattr(common, "RESPONSE_BUDGET_BYTES", 1024 * 1024)
    b.update_schema(server.registry, "big", 0, b.add_scalar("notes", "text"),
                    b.add_scalar("n", "number"))  # fmt: skip
    ids = [f"u{i:02d}" for i in range(20)]
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="big", updates=[
        b.metadata_update(d, {"notes": d * 50_000, "n": float(i)}) for i, d in enumerate(ids)
    ]))  # fmt: skip
    pages: list[list[str]] = []
    token = ""
    while True:
        page = server.metadata.QueryMetadata(mpb.QueryMetadataRequest(
            schema="big", order_by="n desc", page_size=1000, page_token=token))  # fmt: skip
        pages.append([r.data_unit_id for r in page.records])
        token = page.next_page_token
        if not token:
            break
    assert 1 < len(pages) < 20
    assert all(len(p) <= 11 for p in pages)  # about 1 MiB each
    assert [d for p in pages for d in p] == ids[::-1]

    asked = ["nope", *ids, "u00"]
    got = server.metadata.GetMetadata(mpb.GetMetadataRequest(schema="big", data_unit_ids=asked))
    read = [r.data_unit_id for r in got.records]
    assert list(got.missing_data_unit_ids) == ["nope"]
    assert 0 < len(read) < 20
    assert read + list(got.unread_data_unit_ids) == ids  # in request order, each id once
    with Client(server.address) as client:
        everything = client.get_metadata("big", asked)
    assert sorted(everything) == ids
    assert everything["u07"]["notes"] == "u07" * 50_000


@pytest.mark.parametrize("indexed", [False, True], ids=["scan", "index"])
def test_strings_longer_than_the_index_prefix_sort_by_their_whole_value(
    server: RunningServer, indexed: bool
) -> None:
    """Index entries keep 256 characters; values that differ only later still sort right,
    page after page."""
    b.update_schema(server.registry, "long", 0, spb.SchemaChange(
        add_scalar=spb.AddScalar(key="t", type="text", indexed=indexed)))  # fmt: skip
    stem = "a" * 256
    values = {
        "id1": stem + "b", "id2": stem + "a", "id3": stem, "id4": stem + "ab", "id5": "a",
        "id6": "b", "id7": stem + "a", "id8": "a" * 255 + "b",
    }  # fmt: skip
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="long", updates=[
        b.metadata_update(d, {"t": v}) for d, v in values.items()
    ] + [b.metadata_update("id9", {})]))  # fmt: skip
    by_value = sorted(values, key=lambda d: (values[d], d))
    for order_by, expected in (("t", [*by_value, "id9"]), ("t desc", [*by_value[::-1], "id9"])):
        for page_size in (1, 3, 1000):
            seen: list[str] = []
            token = ""
            while True:
                request = mpb.QueryMetadataRequest(
                    schema="long", order_by=order_by, page_size=page_size, page_token=token
                )
                page = server.metadata.QueryMetadata(request)
                seen += [r.data_unit_id for r in page.records]
                token = page.next_page_token
                if not token:
                    break
            assert seen == expected, (order_by, page_size)
