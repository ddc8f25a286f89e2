"""Python values -> metareg.v1.Value and back, without a server."""

from __future__ import annotations

import struct
import uuid
from array import array
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metareg.client import ValueConversionError
from metareg.client._values import (
    decode_value,
    encode_metadata,
    encode_value,
    flatten,
)
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import wire


def encoded(value: object) -> mpb.Value:
    message = mpb.Value()
    encode_value(value, message)
    return message


class FakeDType:
    def __init__(self, kind: str) -> None:
        self.kind = kind


class FakeArray:
    """Enough of numpy's ndarray for the client: dtype, ndim, astype, tobytes, tolist."""

    def __init__(self, values: list[Any], kind: str = "f", ndim: int = 1) -> None:
        self.values, self.dtype, self.ndim, self.shape = values, FakeDType(kind), ndim, (1,)

    def astype(self, dtype: str) -> FakeArray:
        assert dtype == "<f4"
        return self

    def tobytes(self) -> bytes:
        return struct.pack(f"<{len(self.values)}f", *self.values)

    def tolist(self) -> list[Any]:
        return list(self.values)


class Color(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "kind", "back"),
    [
        ("x", "string_value", "x"),
        (1.5, "number_value", 1.5),
        (3, "number_value", 3.0),
        (True, "bool_value", True),
        (False, "bool_value", False),
        (None, "null_value", None),
        ([0.5, 1.0], "embedding_value", [0.5, 1.0]),
        ([0.5, 1], "embedding_value", [0.5, 1.0]),
        ((0.25, 0.75), "embedding_value", [0.25, 0.75]),
        (array("f", [1.5, 2.5]), "embedding_value", [1.5, 2.5]),
        (array("d", [1.5, 2.5]), "embedding_value", [1.5, 2.5]),
        (FakeArray([0.5, -2.0]), "embedding_value", [0.5, -2.0]),
        (FakeArray([3, 4], kind="i"), "int_list_value", [3, 4]),
        ([0, 12, 48], "int_list_value", [0, 12, 48]),
        ([], "int_list_value", []),
        (datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "string_value", "2024-05-01T12:30:00+00:00"),
        (uuid.UUID(int=5), "string_value", str(uuid.UUID(int=5))),
        (Color.RED, "string_value", "red"),
    ],
)
def test_python_values_map_to_their_kind(value: object, kind: str, back: object) -> None:
    message = encoded(value)
    assert message.WhichOneof("kind") == kind
    assert decode_value(message) == back


def test_a_bool_is_never_a_number() -> None:
    assert encoded(True).WhichOneof("kind") == "bool_value"
    with pytest.raises(ValueConversionError, match="a bool is not a number"):
        encoded([1.0, True])
    with pytest.raises(ValueConversionError, match="a bool is not a number"):
        encoded([True, False])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1}, "nested object"),
        (["a", "b"], "a list of str is not a value"),
        (object(), "a object is not a metadata value"),
        (10**400, "too large"),
        ([1, 2**64], "18446744073709551616 in an int list is out of range"),
        ([-(2**63) - 1], "out of range: ints are 64-bit"),
        (FakeArray([1.0], ndim=2), "use 1-d"),
    ],
)
def test_values_without_a_representation_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueConversionError, match=message):
        encoded(value)


def test_the_embedding_fast_path_matches_the_slow_path() -> None:
    vector = [0.1 * i for i in range(512)]
    slow = mpb.Value()
    slow.embedding_value.values.extend(vector)
    assert encoded(vector).SerializeToString() == slow.SerializeToString()
    fast = mpb.FloatList()
    wire.set_floats(fast, array("f", vector).tobytes())
    assert fast.values == slow.embedding_value.values
    assert wire.read_floats(slow.embedding_value) == array("f", vector)
    empty = mpb.FloatList()
    wire.set_floats(empty, b"")
    assert list(wire.read_floats(empty)) == []


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=300))
def test_float32_embeddings_round_trip_exactly(vector: list[float]) -> None:
    if not vector or all(type(x) is int for x in vector):
        return
    # Read back as the shortest decimal of each float32: the same float32 values.
    assert array("f", decode_value(encoded(vector))) == array("f", vector)  # type: ignore[arg-type]


def test_flatten_nested() -> None:
    assert flatten({"capture": {"temp": 1, "gps": {"lat": 2}}, "a": None}) == {
        "capture.temp": 1,
        "capture.gps.lat": 2,
        "a": None,
    }
    with pytest.raises(ValueConversionError, match=r'"capture\.temp" is given twice'):
        flatten({"capture": {"temp": 1}, "capture.temp": 2})
    target = mpb.MetadataRecord()
    encode_metadata({"capture": {"temp": 1}}, target.metadata, flatten_nested=True)
    assert dict(target.metadata)["capture.temp"].number_value == 1.0


def test_errors_name_the_key() -> None:
    target = mpb.MetadataRecord()
    with pytest.raises(ValueConversionError, match='key "clip": a list with booleans') as caught:
        encode_metadata({"ok": 1, "clip": [True]}, target.metadata)
    assert caught.value.key == "clip"
    with pytest.raises(ValueConversionError, match=r'key "note": .*lone surrogate'):
        encode_metadata({"note": "a\ud800"}, target.metadata)
    with pytest.raises(ValueConversionError, match=r"key .*\\udc00.* lone surrogate"):
        encode_metadata({"\udc00": 1}, target.metadata)
    with pytest.raises(ValueConversionError, match='key "keyframes": 18446744073709551616'):
        encode_metadata({"keyframes": [1, 2**64]}, target.metadata)
    with pytest.raises(ValueConversionError, match="mapping"):
        encode_metadata(["not", "a", "mapping"], target.metadata)  # type: ignore[arg-type]
