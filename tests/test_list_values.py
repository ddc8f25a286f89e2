"""ListValues (facets): the distinct values of a key with their record counts, most
frequent first, agree with a plain-Python count of the stored records, whether the
index answers (an indexed key without a filter) or the records are read."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.server.domain.query.facets import prefix_end
from metareg.v1 import metadata_pb2 as mpb

from . import builders as b
from .conftest import RunningServer

WEATHER = ["sun", "rain", "snow", "fog"]
LONG_HEAD = "h" * 256  # values longer than the index keeps, equal in their first 256


def indexed(change: Any) -> Any:
    getattr(change, change.WhichOneof("change")).indexed = True
    return change


def records(count: int, seed: int) -> dict[str, dict[str, object]]:
    rng = random.Random(seed)
    made: dict[str, dict[str, object]] = {}
    for i in range(count):
        values: dict[str, object] = {}
        cam = f"c{rng.choice('abc')}{rng.randint(0, 4)}" + rng.choice(["", "é", "x"])
        if rng.random() < 0.8:
            values["cam"] = values["cam_plain"] = cam  # the same values, one not indexed
        for key, value in (
            ("w", rng.choice(WEATHER)),
            ("flag", rng.random() < 0.3),
            ("n", float(rng.randint(-3, 3)) / 2),
            ("id", f"{rng.randint(0, 3):08x}-0000-4000-8000-000000000000"),
            ("long", LONG_HEAD + rng.choice("xyz") * rng.randint(1, 3)),
        ):
            if rng.random() < 0.8:  # some records lack the key
                values[key] = value
        made[f"u{i:04d}"] = values
    return made


@pytest.fixture
def facets(server: RunningServer) -> tuple[RunningServer, dict[str, dict[str, object]]]:
    b.update_schema(
        server.registry, "s", 0,
        indexed(b.add_scalar("cam", "varchar", max_length=32)),
        b.add_scalar("cam_plain", "varchar", max_length=32),
        indexed(b.add_enum("w", WEATHER)),
        indexed(b.add_scalar("flag", "boolean")),
        indexed(b.add_scalar("n", "number")),
        indexed(b.add_scalar("id", "uuid")),
        indexed(b.add_scalar("long", "varchar")),
        b.add_scalar("note", "text"),
        b.add_scalar("at", "datetime"),
        b.add_embedding("emb", 2),
        b.add_scalar("gone", "varchar"),
    )  # fmt: skip
    data = records(400, seed=11)
    updates = [b.metadata_update(duid, values) for duid, values in data.items()]
    for start in range(0, len(updates), 200):
        server.metadata.ApplyBundle(
            mpb.ApplyBundleRequest(schema="s", updates=updates[start : start + 200])
        )
    b.update_schema(server.registry, "s", 1, b.delete_key("gone"))
    return server, data


def list_values(server: RunningServer, key: str, prefix: str = "", filter_text: str = "",
                limit: int = 0) -> mpb.ListValuesResponse:  # fmt: skip
    return server.metadata.ListValues(
        mpb.ListValuesRequest(schema="s", key=key, prefix=prefix, filter=filter_text, limit=limit)
    )


def pairs(response: mpb.ListValuesResponse) -> list[tuple[object, int]]:
    return [(b.python_value(entry.value), entry.count) for entry in response.values]


FILTERS: dict[str, Callable[[dict[str, object]], bool]] = {
    "": lambda r: True,
    "flag = true": lambda r: r.get("flag") is True,
    'w IN ("rain", "fog")': lambda r: r.get("w") in ("rain", "fog"),
    "n >= 0": lambda r: "n" in r and float(r["n"]) >= 0,  # type: ignore[arg-type]
    'cam = "ca1"': lambda r: r.get("cam") == "ca1",
}


def reference(data: dict[str, dict[str, object]], key: str, prefix: str, filter_text: str,
              limit: int) -> tuple[list[tuple[object, int]], bool]:  # fmt: skip
    counted = Counter(
        values[key] for values in data.values()
        if key in values and FILTERS[filter_text](values)
        and (not prefix or str(values[key]).startswith(prefix))
    )  # fmt: skip
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit], len(ranked) > limit


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["cam", "cam_plain", "w", "flag", "n", "id", "long"]),
    prefix=st.sampled_from(["", "c", "ca", "cb2", "cbé"[:3], "r", "s", "00000001", "h", "zz"]),
    filter_text=st.sampled_from(sorted(FILTERS)),
    limit=st.sampled_from([1, 2, 3, 5, 20, 1000]),
)
def test_counts_agree_with_a_count_of_the_stored_records(
    facets: tuple[RunningServer, dict[str, dict[str, object]]],
    key: str, prefix: str, filter_text: str, limit: int,
) -> None:  # fmt: skip
    server, data = facets
    if key in ("flag", "n"):
        prefix = ""
    if key == "long" and prefix:
        prefix = LONG_HEAD + prefix[-1]
    response = list_values(server, key, prefix, filter_text, limit)
    expected, more = reference(data, key, prefix, filter_text, limit)
    assert pairs(response) == expected
    assert response.more is more
    assert response.schema_version == 2


def test_an_indexed_and_an_unindexed_key_with_the_same_values_agree(
    facets: tuple[RunningServer, dict[str, dict[str, object]]],
) -> None:
    server, _ = facets
    for prefix in ("", "c", "cb", "cc3"):
        assert pairs(list_values(server, "cam", prefix, limit=1000)) == pairs(
            list_values(server, "cam_plain", prefix, limit=1000)
        )


def test_values_come_back_in_their_types_and_long_ones_whole(
    facets: tuple[RunningServer, dict[str, dict[str, object]]],
) -> None:
    server, data = facets
    flags = list_values(server, "flag")
    assert [entry.value.WhichOneof("kind") for entry in flags.values] == ["bool_value"] * 2
    assert {b.python_value(e.value) for e in flags.values} == {True, False}
    assert {e.value.WhichOneof("kind") for e in list_values(server, "n").values} == {"number_value"}
    # Values that agree on the index's first 256 characters are still told apart.
    longs = pairs(list_values(server, "long", limit=1000))
    assert len(longs) == 9
    assert all(len(str(value)) > 256 for value, _ in longs)
    assert sum(n for _, n in longs) == sum(1 for r in data.values() if "long" in r)


def test_the_default_limit_is_20_and_more_says_what_is_left(server: RunningServer) -> None:
    b.update_schema(server.registry, "s", 0, indexed(b.add_scalar("k", "varchar")))
    server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="s", updates=[
        b.metadata_update(f"u{i}", {"k": f"v{i % 25:02d}"}) for i in range(100)
    ]))  # fmt: skip
    first = list_values(server, "k")
    assert len(first.values) == 20
    assert first.more
    assert pairs(first)[:2] == [("v00", 4), ("v01", 4)]  # equal counts: by value
    everything = list_values(server, "k", limit=5000)  # more than 1000 means 1000
    assert len(everything.values) == 25
    assert not everything.more
    assert not list_values(server, "k", prefix="v2", limit=5).more
    assert pairs(list_values(server, "k", prefix="nothing")) == []


@pytest.mark.parametrize(
    ("request_fields", "field", "words"),
    [
        ({"key": "nope"}, "key", 'schema has no key "nope"'),
        ({"key": "note"}, "key", 'key "note" is of type text'),
        ({"key": "at"}, "key", 'key "at" is of type datetime'),
        ({"key": "emb"}, "key", 'key "emb" is of type embedding'),
        ({"key": "gone"}, "key", 'key "gone" is soft-deleted'),
        ({"key": "n", "prefix": "1"}, "prefix", 'key "n" is of type number: a prefix'),
        ({"key": "flag", "prefix": "t"}, "prefix", "applies to varchar, enum and uuid keys"),
        ({"key": "cam", "prefix": "a\x00"}, "prefix", "without NUL"),
    ],
)
def test_a_key_without_values_to_list_is_invalid_argument_naming_it(
    facets: tuple[RunningServer, dict[str, dict[str, object]]],
    request_fields: dict[str, str], field: str, words: str,
) -> None:  # fmt: skip
    server, _ = facets
    with pytest.raises(grpc.RpcError) as caught:
        server.metadata.ListValues(mpb.ListValuesRequest(schema="s", **request_fields))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert words in caught.value.details()
    assert words in b.field_violations(caught.value)[field]


def test_a_bad_limit_filter_or_schema_is_refused_clearly(
    facets: tuple[RunningServer, dict[str, dict[str, object]]],
) -> None:
    server, _ = facets
    with pytest.raises(grpc.RpcError) as caught:
        list_values(server, "cam", limit=-1)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit must be 0..1000, got -1" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        list_values(server, "cam", filter_text="n >> 1")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "column" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        server.metadata.ListValues(mpb.ListValuesRequest(schema="missing", key="cam"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


@given(st.text(max_size=4), st.text(min_size=1, max_size=3))
def test_the_end_of_a_prefix_range_bounds_exactly_the_strings_that_start_with_it(
    text: str, prefix: str
) -> None:
    end = prefix_end(prefix)
    inside = prefix <= text and (end is None or text < end)
    assert inside is text.startswith(prefix)
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"
