"""Decoding metadata values from the wire: readers change the speed, never the result."""

from __future__ import annotations

import math
from array import array

from hypothesis import given
from hypothesis import strategies as st

from metareg.server.api import convert
from metareg.server.domain.schema import KeyDefinition, KeyState, KeyType, SchemaState
from metareg.server.domain.validator import CompiledValidator
from metareg.v1 import metadata_pb2 as mpb

from . import builders as b

KEYS = ("a", "b", "c", "d")
# Defaults ("", 0.0, -0.0, False) are where a reader cannot tell the kind.
scalars = st.one_of(
    st.sampled_from(["", "x", "\u00e9t\u00e9"]),
    st.text(max_size=5),
    st.sampled_from([0.0, -0.0, 1.5, math.nan, math.inf]),
    st.floats(allow_nan=True),
    st.booleans(),
)


def wire_value(kind: str, scalar: object) -> mpb.Value:
    value = mpb.Value()
    match kind:
        case "unset":
            pass
        case "null":
            value.null_value = 0
        case "embedding":
            value.embedding_value.values.extend([1.0, -2.5])
        case "empty_embedding":
            value.embedding_value.SetInParent()
        case "int_list":
            value.int_list_value.values.extend([0, 7])
        case _:
            value.CopyFrom(b.value(scalar))
    return value


values = st.builds(
    wire_value,
    st.sampled_from(
        ["scalar", "scalar", "scalar", "unset", "null", "embedding", "empty_embedding", "int_list"]
    ),
    scalars,
)
readers = st.dictionaries(st.sampled_from(KEYS), st.sampled_from([str, float, bool]))


def comparable(decoded: tuple[dict[str, object], tuple[object, ...]]) -> object:
    """NaN-safe and type-exact: -0.0 and 0.0, 1.0 and True, must stay apart."""
    found, problems = decoded
    return (
        {
            key: (type(value).__name__, value.tolist() if isinstance(value, array) else repr(value))
            for key, value in found.items()
        },
        problems,
    )


@given(st.dictionaries(st.sampled_from(KEYS), values), readers)
def test_readers_never_change_what_is_decoded(
    metadata: dict[str, mpb.Value], kinds: dict[str, type]
) -> None:
    update = mpb.MetadataUpdate(data_unit_id="u")
    for key, value in metadata.items():
        update.metadata[key].CopyFrom(value)
    plain = convert.values_from_proto(update.metadata)
    hinted = convert.values_from_proto(update.metadata, convert.value_readers(kinds))
    assert comparable(hinted) == comparable(plain)
    assert set(plain[0]) | {p.key for p in plain[1]} == set(metadata)  # nothing dropped


def test_readers_follow_the_schema_types() -> None:
    definitions = (
        KeyDefinition("name", KeyType.VARCHAR, max_length=10),
        KeyDefinition("score", KeyType.NUMBER),
        KeyDefinition("ok", KeyType.BOOLEAN),
        KeyDefinition("v", KeyType.EMBEDDING, embedding_size=2),
        KeyDefinition("gone", KeyType.NUMBER, state=KeyState.SOFT_DELETED),
    )
    state = SchemaState({d.key: d for d in definitions})
    validator = CompiledValidator("s", 1, state)
    assert dict(validator.value_kinds) == {"name": str, "score": float, "ok": bool}
    assert set(convert.value_readers(validator.value_kinds)) == {"name", "score", "ok"}
