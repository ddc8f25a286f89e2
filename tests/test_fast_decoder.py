"""The compiled fast path never accepts what the full validator rejects (hypothesis).

For any JSON record form, `FastDecoder.decode` either declines (None) or returns
exactly what the generic decoder followed by the full validator returns, with no
problems. The inputs are the agreement test's records (tests/test_validator_agreement.py)
rendered as JSON in both embedding forms, plus raw JSON the encoder would never
write: duplicate keys, escapes, huge numbers and control characters.
"""

from __future__ import annotations

import base64
from array import array
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metareg.server.domain import evolution as ev
from metareg.server.domain.bundle import MetadataUpdate, UpdateMode, check_update
from metareg.server.domain.errors import MalformedRecords
from metareg.server.domain.fast_decoder import FastDecoder
from metareg.server.domain.json_records import decode_records
from metareg.server.domain.schema import SchemaState
from metareg.server.domain.validator import CompiledValidator

from .test_validator_agreement import CHANGES, records, typed_values

STATE = ev.apply_changes(SchemaState(), CHANGES).after
VALIDATOR = CompiledValidator("fast", 1, STATE)
DECODER = FastDecoder(STATE)

ids = st.one_of(
    st.sampled_from(["u1", "u2", "unit-3", "é", "a b"]),
    st.sampled_from(["", "x" * 256, "x" * 257, "a\n", "a\x7f", "a\x00", "tab\there"]),
    st.text(max_size=6),
)
modes = st.sampled_from([None, "merge", "replace", "keep_existing", "MERGE", "upsert", 3])


def _json_value(key: str, value: Any, as_base64: bool) -> Any:
    is_floats = isinstance(value, list) and any(type(x) is float for x in value)
    if key == "m" and is_floats and as_base64:
        return base64.b64encode(array("f", value).tobytes()).decode()
    return value


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    metadata = draw(records())
    base64_form = draw(st.booleans())
    envelope: dict[str, Any] = {
        "data_unit_id": draw(ids),
        "metadata": {k: _json_value(k, v, base64_form) for k, v in metadata.items()},
    }
    if draw(st.booleans()):
        envelope["mode"] = draw(modes)
    return envelope


# Raw fragments spliced into a record's metadata object: JSON the encoder would not write.
RAW_MEMBERS = [
    b'"n": 1, "n": "x"',
    b'"n": "x", "n": 1',
    b'"n": 1e400',
    b'"n": -0',
    b'"n": 123456789012345678901234567890',
    b'"v": "a\\u0000"',
    b'"v": "\\\\u0000"',
    b'"t": "\\ud83d\\ude00"',
    b'"d": "2024-05-01T10:00:00.9999999Z"',
    b'"d": "2024-05-01 10:00:00Z"',
    b'"u": "0B5D2F7E-3C1A-4E9B-8F6D-2A7C9E1B4D30"',
    b'"u": "0b5d2f7e3c1a4e9b8f6d2a7c9e1b4d30"',
    b'"m": "AAAAAAAAAAAAAAAA"',
    b'"m": "AACAfwAAAAAAAAAA"',
    b'"m": [1, 2, 1e39]',
    b'"m": "AAAAAAAAAAAAAAA="',
    b'"keyframes": [0, 9223372036854775807]',
    b'"keyframes": [9223372036854775808]',
    b'"keyframes": [1.0]',
    b'"e": "c d"',
    b'"f": 1',
    b'"gone": null',
    b'"q": -0',
    b'"q": -1e-400',
    b'"q": 1.0000000000000001',
    b'"q": 1.0000000000000002',
    b'"q": 9007199254740993',
    b'"c": "cam001\\n"',
    b'"c": "cam\\u0660\\u0661\\u0662"',
    b'"p": "a\\u0000c"',
]


def _decoded(raw: bytes) -> list[MetadataUpdate] | None:
    try:
        return decode_records(raw, STATE, "updates_json")
    except MalformedRecords:
        return None


def _same(fast: MetadataUpdate, generic: MetadataUpdate) -> None:
    values, problems = check_update(VALIDATOR, generic, coerce_strings=False)
    assert problems == [], problems
    assert fast.checked
    assert fast.decode_problems == ()
    assert (fast.data_unit_id, fast.mode) == (generic.data_unit_id, generic.mode)
    # repr: also tells -0.0 from 0.0, and a float from an equal int.
    assert sorted(map(repr, fast.values.items())) == sorted(map(repr, values.items()))


def assert_sound(raw: bytes) -> bool:
    """The fast result, if any, equals the full path's; returns whether it accepted."""
    fast = DECODER.decode(raw)
    if fast is None:
        return False
    generic = _decoded(raw)
    assert generic is not None, "the fast path decoded JSON the generic decoder refuses"
    assert len(fast) == len(generic)
    for one, other in zip(fast, generic, strict=True):
        _same(one, other)
    return True


@settings(max_examples=800, deadline=None)
@given(batch=st.lists(envelopes(), max_size=4))
def test_the_fast_path_accepts_only_what_the_full_validator_accepts(
    batch: list[dict[str, Any]],
) -> None:
    assert_sound(msgspec.json.encode(batch))


@settings(max_examples=300, deadline=None)
@given(member=st.sampled_from(RAW_MEMBERS), record=envelopes())
def test_raw_json_the_encoder_never_writes(member: bytes, record: dict[str, Any]) -> None:
    metadata = msgspec.json.encode(record["metadata"])
    spliced = b"{" + member + (b", " + metadata[1:] if len(metadata) > 2 else b"}")
    raw = b'[{"data_unit_id": "r", "metadata": ' + spliced + b"}]"
    assert_sound(raw)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(["v", "t", "n", "f", "d", "u", "e", "m", "keyframes",
                                          "q", "c", "p"]), unique=True, max_size=6))  # fmt: skip
    metadata: dict[str, Any] = {}
    for key in keys:
        # The valid branch of typed_values, drawn until it passes the full validator.
        value = draw(typed_values(key).filter(lambda v, k=key: _valid_alone(k, v)))
        metadata[key] = value
    return {"data_unit_id": draw(st.sampled_from(["a", "b", "c"])), "metadata": metadata}


def _valid_alone(key: str, value: Any) -> bool:
    raw = msgspec.json.encode([{"data_unit_id": "a", "metadata": {key: value}}])
    decoded = _decoded(raw)
    return decoded is not None and not check_update(VALIDATOR, decoded[0], coerce_strings=False)[1]


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(valid_records(), min_size=1, max_size=4), base64_form=st.booleans())
def test_valid_records_take_the_fast_path(batch: list[dict[str, Any]], base64_form: bool) -> None:
    """The fast path is not a path that always declines: valid bundles go through it."""
    for record in batch:
        record["metadata"] = {
            k: _json_value(k, v, base64_form) for k, v in record["metadata"].items()
        }
    raw = msgspec.json.encode(batch)
    raw_has_nul = b"\\u0000" in raw
    assert assert_sound(raw) or raw_has_nul


def test_a_schema_that_allows_unknown_keys_has_no_fast_path() -> None:
    assert FastDecoder.compile(STATE.with_allow_unknown_keys(True)) is None
    assert FastDecoder.compile(STATE) is not None


@pytest.mark.parametrize(
    ("raw", "values"),
    [
        (b'{"n": 5}', {"n": 5.0}),
        (b'{"d": "2024-05-01T12:00:00+02:00"}', {"d": "2024-05-01T10:00:00.000000Z"}),
        (b'{"u": "0B5D2F7E-3C1A-4E9B-8F6D-2A7C9E1B4D30"}',
         {"u": "0b5d2f7e-3c1a-4e9b-8f6d-2a7c9e1b4d30"}),
        (b'{"m": "AACAPwAAAEAAAEBA"}', {"m": array("f", [1.0, 2.0, 3.0])}),
        (b'{"m": [1, 2, 3.5]}', {"m": array("f", [1.0, 2.0, 3.5])}),
        (b'{"keyframes": [0, 3], "v": null}', {"keyframes": [0, 3], "v": None}),
    ],
)  # fmt: skip
def test_normalised_values(raw: bytes, values: dict[str, object]) -> None:
    decoded = DECODER.decode(
        b'[{"data_unit_id": "a", "metadata": ' + raw + b', "mode": "replace"}]'
    )
    assert decoded is not None
    assert decoded[0].values == values
    assert decoded[0].mode is UpdateMode.REPLACE
