"""Every value kind through Bundle (the JSON record form) gives the records and the
violations that the typed form gives, and values JSON cannot carry fail before sending."""

from __future__ import annotations

import math
import uuid
from array import array
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from typing import Any

import pytest

from metareg.client import Client, Outcome, ValueConversionError
from metareg.client._values import encode_metadata
from metareg.v1 import metadata_pb2 as mpb

from ..conftest import RunningServer
from .conftest import CallRecorder
from .test_values import FakeArray

SCHEMA = {
    "s": "varchar",
    "t": "text",
    "n": "number",
    "b": "boolean",
    "d": "datetime",
    "id": "uuid",
    "e": {"type": "enum", "values": ["red", "blue"]},
    "clip": {"type": "embedding", "size": 4},
}


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Score(float):
    pass


class Tensor:
    """Something with tolist() only, as torch tensors are."""

    def tolist(self) -> list[float]:
        return [0.5, 0.25, 0.125, 2.0]


VALUES: dict[str, dict[str, Any]] = {
    "text": {"s": "cam-1", "t": "long text \u00e9\u4e2d", "e": "blue"},
    "str-enum": {"s": Color.RED, "e": Color.RED},
    "date": {"t": date(2024, 5, 1)},  # a date is not a date-time: its ISO text
    "float": {"n": 1.5},
    "int": {"n": 3},
    "int-enum": {"n": Level.HIGH},
    "float-subclass": {"n": Score(0.25)},
    "beyond-int64": {"n": 2**70},
    "int64-min": {"n": -(2**63)},
    "true": {"b": True},
    "false": {"b": False},
    "aware": {"d": datetime(2024, 5, 1, 12, 30, tzinfo=UTC)},
    "naive": {"d": datetime(2024, 5, 1, 12, 30)},  # naive means UTC
    "offset": {"d": "2024-05-01T14:30:00+02:00"},
    "uuid": {"id": uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427")},
    "floats": {"clip": [0.1, 0.2, 0.3, 0.4]},
    "mixed": {"clip": [0.5, 1, 2, 3]},
    "tuple": {"clip": (0.25, 0.5, 0.75, 1.0)},
    "array-f": {"clip": array("f", [1.5, 2.5, 3.5, 4.5])},
    "array-d": {"clip": array("d", [0.1, 0.2, 0.3, 1e-40])},
    "numpy-like": {"clip": FakeArray([0.5, -2.0, 3.0, 4.0])},
    "tolist": {"clip": Tensor()},
    "int-embedding": {"clip": [1, 2, 3, 4]},  # an int list, which an embedding key takes
    "keyframes": {"keyframes": [0, 12, 48]},
    "no-keyframes": {"keyframes": []},
    "array-i": {"keyframes": array("i", [4, 5])},
    "numpy-like-ints": {"keyframes": FakeArray([6, 7], kind="i")},
    "null": {"s": "x", "n": None},  # merge: None removes a key (here: absent anyway)
}


@pytest.fixture
def values(client: Client) -> Client:
    client.import_schema_from_dict("values", SCHEMA)
    return client


def typed_apply(server: RunningServer, schema: str, updates: dict[str, dict[str, Any]]) -> Any:
    """The same updates through the raw stub in the typed form, for comparison."""
    request = mpb.ApplyBundleRequest(schema=schema, partial=True)
    for data_unit_id, metadata in updates.items():
        update = request.updates.add(data_unit_id=data_unit_id)
        encode_metadata(metadata, update.metadata)
    return server.metadata.ApplyBundle(request)


def test_every_value_kind_is_stored_as_the_typed_form_stores_it(
    server: RunningServer, values: Client
) -> None:
    with values.bundle("values") as bundle:
        for name, metadata in VALUES.items():
            bundle.update(name, metadata)
    assert [r.outcome for r in bundle.results] == [Outcome.APPLIED] * len(VALUES)
    typed_apply(server, "values", {f"typed-{name}": m for name, m in VALUES.items()})
    found = values.get_metadata("values", [*VALUES, *(f"typed-{name}" for name in VALUES)])
    assert {name: found[name] for name in VALUES} == {
        name: found[f"typed-{name}"] for name in VALUES
    }
    # A few, spelled out: embeddings read back as the shortest decimal of each float32,
    # datetimes normalised.
    assert found["floats"]["clip"] == [0.1, 0.2, 0.3, 0.4]
    assert found["mixed"]["clip"] == [0.5, 1.0, 2.0, 3.0]
    assert found["tolist"]["clip"] == [0.5, 0.25, 0.125, 2.0]
    assert found["aware"]["d"] == found["naive"]["d"] == found["offset"]["d"]
    assert found["date"] == {"t": "2024-05-01"}
    assert found["beyond-int64"] == {"n": float(2**70)}
    assert found["keyframes"] == {"keyframes": [0, 12, 48]}
    assert found["null"] == {"s": "x"}


def test_modes_in_the_json_form(values: Client) -> None:
    with values.bundle("values") as bundle:
        bundle.update("u", {"s": "a", "n": 1})
        bundle.update("u", {"n": None, "b": True}, mode="merge")
        bundle.update("u", {"s": "other", "t": "added"}, mode="KEEP_EXISTING")
    assert values.get_metadata("values", ["u"]) == {"u": {"s": "a", "b": True, "t": "added"}}
    values.apply("values", {"u": {"n": 2}}, mode="replace")
    assert values.get_metadata("values", ["u"]) == {"u": {"n": 2.0}}


def test_a_vector_for_a_key_that_is_no_embedding_is_a_violation_not_a_string(
    server: RunningServer, client: Client
) -> None:
    """Base64 goes only to embedding keys: elsewhere the server would take it as text."""
    client.import_schema_from_dict("open", {"s": "varchar"}, allow_unknown_keys=True)
    updates = {"u1": {"s": [0.5, 0.25]}, "u2": {"other": array("f", [0.5, 0.25])}}
    results = client.apply("open", updates, partial=True)
    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED]
    typed = typed_apply(server, "open", updates)
    assert [[(v.key, v.rule, v.value) for v in r.violations] for r in results] == [
        [(v.key, v.rule, v.value) for v in r.violations] for r in typed.results
    ]
    assert client.get_metadata("open", ["u1", "u2"]) == {}


def test_violations_are_those_of_the_typed_form(server: RunningServer, values: Client) -> None:
    updates = {
        "u1": {"n": "high", "b": 1, "clip": [0.5, 0.5]},
        "u2": {"e": "green", "id": "not-a-uuid", "keyframes": [-1]},
        "u3": {"undeclared": 1, "s": "x" * 9000},
    }
    results = values.apply("values", updates, partial=True)
    typed = typed_apply(server, "values", updates)
    assert [(r.data_unit_id, r.outcome) for r in results] == [
        (u, Outcome.REJECTED) for u in updates
    ]
    assert [[(v.field, v.rule, v.value, v.description) for v in r.violations] for r in results] == [
        [(v.field, v.rule, v.value, v.description) for v in r.violations] for r in typed.results
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n", math.nan),
        ("n", math.inf),
        ("n", -math.inf),
        ("clip", [0.5, math.nan, 0.5, 0.5]),
        ("clip", [0.5, math.inf, 0.5, 0.5]),
        ("clip", array("f", [-math.inf, 0, 0, 0])),
        ("clip", [0.5, 1e39, 0.5, 0.5]),
        ("clip", array("d", [1e39, 0, 0, 0])),
    ],
)
def test_non_finite_numbers_fail_at_update_and_queue_nothing(
    values: Client, recorder: CallRecorder, key: str, value: object
) -> None:
    with values.bundle("values") as bundle:
        bundle.update("u1", {"s": "before"})
        with pytest.raises(ValueConversionError, match=f"'u2': key \"{key}\": ") as caught:
            bundle.update("u2", {"s": "x", key: value})
        assert caught.value.key == key
        assert bundle.pending == 1  # the bad update was not queued
        bundle.update("u3", {"s": "after"})  # and the bundle is still usable
    assert [(r.data_unit_id, r.outcome) for r in bundle.results] == [
        ("u1", Outcome.APPLIED),
        ("u3", Outcome.APPLIED),
    ]
    assert values.get_metadata("values", ["u1", "u2", "u3"]) == {
        "u1": {"s": "before"},
        "u3": {"s": "after"},
    }
    assert len(recorder.requests("ApplyBundle")) == 1


def test_validate_sends_the_json_form_with_the_same_report(values: Client) -> None:
    records = {"u1": {"clip": [0.5, 0.5, 0.5, 0.5], "n": 1}, "u2": {"clip": [1.0], "n": "x"}}
    report = values.validate("values", {**records, "u3": {"n": math.nan}})
    assert (report.valid_count, report.invalid_count) == (1, 2)
    assert [(v.data_unit_id, v.key, v.rule) for v in report.violations] == [
        ("u2", "clip", "embedding_size"),
        ("u2", "n", "type"),
        ("u3", "n", "value"),
    ]
    assert "not a finite number" in report.violations[2].description


def test_numpy_values_round_trip_when_numpy_is_installed(
    server: RunningServer, values: Client
) -> None:
    np = pytest.importorskip("numpy")
    updates = {
        "f64": {"clip": np.array([0.1, 0.2, 0.3, 0.4])},
        "f32": {"clip": np.arange(4, dtype=np.float32)},
        "ints": {"keyframes": np.array([1, 2, 3])},
        "scalars": {"n": np.float64(2.5), "b": np.bool_(False), "s": np.str_("np")},
    }
    values.apply("values", updates)
    typed_apply(server, "values", {f"typed-{k}": m for k, m in updates.items()})
    found = values.get_metadata("values", [*updates, *(f"typed-{k}" for k in updates)])
    assert [found[k] for k in updates] == [found[f"typed-{k}"] for k in updates]
    assert found["f64"]["clip"] == [0.1, 0.2, 0.3, 0.4]  # the shortest decimal of each float32
    assert found["scalars"] == {"n": 2.5, "b": False, "s": "np"}
