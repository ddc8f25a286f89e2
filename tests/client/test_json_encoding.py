"""Python values -> the JSON record form, without a server: the typed form's rules, and
no NaN or infinity ever reaching a JSON encoder (which would write null)."""

from __future__ import annotations

import base64
import json
import math
import struct
import uuid
from array import array
from collections import OrderedDict
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metareg.client import ValueConversionError
from metareg.client._json_form import json_array, metadata_json, mode_end, quoted_id, record_json
from metareg.client._values import decode_value, encode_value
from metareg.v1 import metadata_pb2 as mpb

from .test_values import FakeArray

EMBEDDINGS = frozenset({"clip"})


def sent(metadata: dict[str, Any], embeddings: frozenset[str] = EMBEDDINGS) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(metadata_json(metadata, embeddings))
    return decoded


def floats32(text: str) -> list[float]:
    vector = array("f")
    vector.frombytes(base64.b64decode(text, validate=True))
    return vector.tolist()


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Tensor:
    """Something with tolist() only, as torch tensors are."""

    def tolist(self) -> list[float]:
        return [0.5, 0.25]


@pytest.mark.parametrize(
    ("value", "json_value"),
    [
        ("x", "x"),
        (1.5, 1.5),
        (3, 3),
        (2**63 - 1, 2**63 - 1),
        (2**70, float(2**70)),  # beyond int64: the double the server makes of it anyway
        (True, True),
        (None, None),
        ([0, 12, 48], [0, 12, 48]),
        ([], []),
        ((1, 2), [1, 2]),
        (array("i", [1, 2]), [1, 2]),
        (FakeArray([3, 4], kind="i"), [3, 4]),
        (datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "2024-05-01T12:30:00+00:00"),
        (date(2024, 5, 1), "2024-05-01"),
        (uuid.UUID(int=5), str(uuid.UUID(int=5))),
        (Color.RED, "red"),
        (Level.HIGH, 3.0),
        (Tensor(), [0.5, 0.25]),  # a float vector, but "other" is no embedding key
    ],
)
def test_values_take_their_json_form(value: object, json_value: object) -> None:
    assert sent({"other": value}) == {"other": json_value}


@pytest.mark.parametrize(
    "vector",
    [
        [0.5, -1.0, 2.0, 0.1],
        [0.5, 1, 2, 3],  # ints among floats: still an embedding
        (0.25, 0.75),
        array("f", [1.5, 2.5]),
        array("d", [1.5, 0.1]),
        FakeArray([0.5, -2.0]),
    ],
)
def test_embeddings_go_as_base64_float32_only_for_embedding_keys(vector: Any) -> None:
    expected = array("f", vector.tolist() if hasattr(vector, "dtype") else vector).tolist()
    assert floats32(sent({"clip": vector})["clip"]) == expected
    # Any other key gets an array of numbers: the server's base64 reading is for
    # embedding keys alone, and a vector given for a text key must stay a type error.
    other = sent({"note": vector})["note"]
    assert isinstance(other, list)
    assert array("f", other).tolist() == expected


def test_the_base64_is_the_typed_forms_float32_bytes() -> None:
    vector = [0.1 * i for i in range(512)]
    typed = mpb.Value()
    encode_value(vector, typed)
    assert floats32(sent({"clip": vector})["clip"]) == array("f", decode_value(typed)).tolist()  # type: ignore[arg-type]
    packed = base64.b64decode(sent({"clip": vector})["clip"])
    assert packed == struct.pack("<512f", *vector)  # little-endian, padded standard base64


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=300))
def test_float32_embeddings_round_trip_exactly(vector: list[float]) -> None:
    if not vector or all(type(x) is int for x in vector):
        return
    assert floats32(sent({"clip": vector})["clip"]) == vector


NOT_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("number", NOT_FINITE)
@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: x,
        lambda x: [0.5, x],
        lambda x: [x, 0.5],
        lambda x: (1, x),
        lambda x: array("f", [0.5, x]),
        lambda x: array("d", [x]),
        lambda x: FakeArray([0.5, x]),
    ],
    ids=["scalar", "list", "first", "tuple", "array-f", "array-d", "numpy-like"],
)
@pytest.mark.parametrize("key", ["clip", "score"])
def test_nan_and_infinities_are_refused_naming_the_key(number: float, wrap: Any, key: str) -> None:
    with pytest.raises(ValueConversionError, match=rf'key "{key}": .*(nan|inf)') as caught:
        metadata_json({"ok": 1, key: wrap(number)}, EMBEDDINGS)
    assert caught.value.key == key


@pytest.mark.parametrize("vector", [[0.5, 1e39], [-1e39], array("d", [1e39]), [1e308, 1e308]])
def test_doubles_beyond_float32_are_refused_in_embeddings(vector: Any) -> None:
    for key in ("clip", "other"):
        with pytest.raises(ValueConversionError, match=f'key "{key}": .*finite float32'):
            metadata_json({key: vector}, EMBEDDINGS)
    # The largest float32 itself is fine.
    largest = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
    assert floats32(sent({"clip": [largest]})["clip"]) == [largest]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1}, "nested object"),
        (["a", "b"], "a list of str is not a value"),
        ([1.0, True], "a bool is not a number"),
        ([True, False], "a bool is not a number"),
        (object(), "a object is not a metadata value"),
        (10**400, "too large"),
        ([1, 2**64], "18446744073709551616 in an int list is out of range"),
        ([-(2**63) - 1], "out of range: ints are 64-bit"),
        ([0.5, 10**400], "too large for a float"),
        (FakeArray([1.0], ndim=2), "use 1-d"),
        ("a\ud800", "lone surrogate"),
    ],
)
def test_values_without_a_representation_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueConversionError, match=f'key "k": .*{message}') as caught:
        metadata_json({"ok": "fine", "k": value}, EMBEDDINGS)
    assert caught.value.key == "k"


def test_keys_and_mappings() -> None:
    with pytest.raises(ValueConversionError, match="key 1 is not a string"):
        metadata_json({1: "x"}, EMBEDDINGS)  # type: ignore[dict-item]
    with pytest.raises(ValueConversionError, match=r"key .*\\udc00.* lone surrogate"):
        metadata_json({"\udc00": 1}, EMBEDDINGS)
    with pytest.raises(ValueConversionError, match="mapping"):
        metadata_json(["not", "a", "mapping"], EMBEDDINGS)  # type: ignore[arg-type]
    assert json.loads(metadata_json(OrderedDict(b=1, a=2), EMBEDDINGS)) == {"b": 1, "a": 2}
    flat = metadata_json({"capture": {"temp": 1}}, EMBEDDINGS, flatten_nested=True)
    assert json.loads(flat) == {"capture.temp": 1}


def test_records_and_modes() -> None:
    element = record_json(quoted_id("u\u00e9"), b'{"a":1}', mode_end("REPLACE"))
    assert json.loads(element) == {
        "data_unit_id": "u\u00e9",
        "metadata": {"a": 1},
        "mode": "replace",
    }
    assert json.loads(record_json(quoted_id("u"), b"{}", mode_end("merge"))) == {
        "data_unit_id": "u",
        "metadata": {},
    }
    assert json.loads(json_array([b"1", b"2"])) == [1, 2]
    assert json_array([]) == b"[]"
    with pytest.raises(ValueError, match="unknown mode 'upsert'"):
        mode_end("upsert")
    with pytest.raises(ValueConversionError, match=r"data_unit_id .*lone surrogate"):
        quoted_id("u\ud800")
    with pytest.raises(ValueConversionError, match="data_unit_id must be a string"):
        quoted_id(7)  # type: ignore[arg-type]


def test_numpy_values_when_numpy_is_installed() -> None:
    np = pytest.importorskip("numpy")
    assert floats32(sent({"clip": np.array([0.1, 0.2], dtype=np.float64)})["clip"]) == (
        array("f", [0.1, 0.2]).tolist()
    )
    assert floats32(sent({"clip": np.array([0.5], dtype=np.float32)})["clip"]) == [0.5]
    assert sent({"keyframes": np.array([1, 2], dtype=np.int64)}) == {"keyframes": [1, 2]}
    assert sent({"n": np.float64(1.5), "b": np.bool_(True), "i": np.int32(4)}) == {
        "n": 1.5,
        "b": True,
        "i": 4,
    }
    for bad in (np.float64("nan"), np.array([0.5, np.inf]), np.array([1e39])):
        with np.errstate(over="ignore"), pytest.raises(ValueConversionError, match='key "clip"'):
            metadata_json({"clip": bad}, EMBEDDINGS)
