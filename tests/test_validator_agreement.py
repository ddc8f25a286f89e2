r"""The compiled validator and `jsonschema` on the exported JSON Schema agree (hypothesis).

Every generated record that one accepts the other accepts. They must differ, by
design, where JSON Schema cannot express a server rule; those inputs are not
generated, and each is named here:

- a naive date-time with an impossible calendar date ("2023-02-30T00:00:00"): the
  pattern for offset-less date-times cannot know month lengths (with an offset,
  the `date-time` format checks it, and both reject);
- a date-time that leaves years 1..9999 once converted to UTC
  ("0001-01-01T00:00:00+01:00"): the server stores UTC, JSON Schema only parses;
- NaN and infinities: JSON has no such numbers (the server rejects them);
- keyframes sent as a float list of whole numbers ([1.0]): JSON Schema counts 1.0
  as an integer, while on the wire a float list is not an int list;
- a trailing newline after a valid date-time: Python's `$`, used by the
  rfc3339-validator package behind jsonschema's `date-time`, matches before it;
- for the same reason, a trailing newline after a value that a key's pattern
  ending in `$` matches: jsonschema runs `pattern` with Python's re, whose `$`
  matches before a final newline, while RE2 (the server) and ECMA-262 (JSON
  Schema's own dialect) do not;
- an integer past 2**53 that only rounding to a double brings within a bound: the
  server compares the double it stores, jsonschema the exact integer (the bounds
  here are 0 and 1, so no integer is that close).

The patterns are ones that RE2 and ECMA-262 read alike (explicit classes such as
[0-9], no `\d`, `.` or `\w`, whose reach differs between dialects).
The exported schema describes whole records, so a record is checked here as a new
one: a required key must be present and not null.

Formats really are checked: rfc3339-validator is installed (asserted below).
"""

from __future__ import annotations

import uuid
from array import array
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from metareg.server.domain import evolution as ev
from metareg.server.domain.bundle import UpdateMode, missing_required
from metareg.server.domain.json_schema import export_json_schema
from metareg.server.domain.schema import KeyConstraints, SchemaState, SchemaVersion
from metareg.server.domain.validator import CompiledValidator, encode_record, record_size_problem
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer

CHANGES: list[ev.SchemaChange] = [
    ev.AddScalar("v", "varchar", 5),
    ev.AddScalar("t", "text"),
    ev.AddScalar("n", "number"),
    ev.AddScalar("f", "boolean"),
    ev.AddScalar("d", "datetime"),
    ev.AddScalar("u", "uuid"),
    ev.AddEnum("e", ("a", "b", "c d")),
    ev.AddEmbedding("m", 3),
    ev.AddScalar("gone", "text"),
    ev.DeleteKey("gone"),
    ev.AddScalar("purged", "number"),
    ev.DeleteKey("purged", hard=True),
    ev.AddScalar("q", "number", constraints=KeyConstraints(minimum=0, maximum=1)),
    ev.AddScalar("c", "varchar", 8, constraints=KeyConstraints(pattern="^cam[0-9]{3}$")),
    ev.AddScalar("p", "text", constraints=KeyConstraints(pattern="[ab]c|^x+$")),
    ev.AddScalar("r", "boolean", constraints=KeyConstraints(required=True), description="seen"),
]
DECLARED = ["v", "t", "n", "f", "d", "u", "e", "m", "keyframes", "q", "c", "p", "r"]
KEYS = [*DECLARED, "gone", "purged", "x", "a/b", " s"]
PATTERN_KEYS = ("c", "p")


def build(allow_unknown: bool) -> tuple[CompiledValidator, Draft202012Validator, dict[str, Any]]:
    state = ev.apply_changes(SchemaState(), [*CHANGES, ev.SetOptions(allow_unknown)]).after
    version = SchemaVersion("agree", 1, state, None)
    document = export_json_schema(version)
    checker = Draft202012Validator(document, format_checker=FormatChecker())
    return CompiledValidator("agree", 1, state), checker, document


def datetimes() -> st.SearchStrategy[str]:
    moments = st.datetimes(
        min_value=__import__("datetime").datetime(1900, 1, 1),
        max_value=__import__("datetime").datetime(2100, 12, 31),
    )
    offsets = st.sampled_from(["Z", "z", "+02:00", "-03:30", "+23:59", "+24:00", "-00:60", ""])
    valid = st.builds(
        lambda m, off, sep, frac: m.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + off,
        moments, offsets, st.sampled_from(["T", "t", " "]),
        st.sampled_from(["", ".5", ".123456789"]),
    )  # fmt: skip
    impossible = st.sampled_from(
        [
            "2023-02-30T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01T25:00:00Z",
            "2023-01-01",
            "12:00:00",
        ]
    )
    return valid | impossible


def uuids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.uuids(version=4).map(str),
        st.uuids(version=4).map(lambda u: str(u).upper()),
        st.uuids(version=1).map(str),
        st.uuids(version=4).map(lambda u: u.hex),
        st.just(str(uuid.UUID(int=0))),
    )


def fractional32() -> st.SearchStrategy[float]:
    """Float32 values that are not whole numbers (whole ones are the documented difference).

    x + 0.5 makes most whole values fractional; from 2**52 up, doubles have no
    fractions left, so those are filtered out.
    """
    return (
        st.floats(allow_nan=False, allow_infinity=False, width=32)
        .map(lambda x: x + 0.5 if x.is_integer() else x)
        .filter(lambda x: not x.is_integer())
    )


def values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=7),
        st.sampled_from(["a", "b", "c d", "C", "abcde", "abcdef", "x\x00"]),
        datetimes(),
        uuids(),
        st.lists(fractional32(), max_size=4),
        st.lists(st.integers(-5, 2**63 - 1), max_size=4),
    )


def typed_values(key: str) -> st.SearchStrategy[Any]:
    """Values aimed at one key's type: mostly valid, sometimes an edge case."""
    finite32 = fractional32()
    valid: dict[str, st.SearchStrategy[Any]] = {
        "v": st.text(max_size=5),
        "t": st.text(max_size=30),
        "n": st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
        "f": st.booleans(),
        "d": st.datetimes().map(lambda m: m.isoformat(timespec="microseconds")),
        "u": st.uuids(version=4).map(str),
        "e": st.sampled_from(["a", "b", "c d"]),
        "m": st.lists(finite32, min_size=3, max_size=3),
        "keyframes": st.lists(st.integers(0, 2**63 - 1), max_size=4),
        "x": st.text(max_size=5) | st.booleans() | st.floats(allow_nan=False,
                                                              allow_infinity=False),
        "q": st.floats(0, 1) | st.sampled_from([0, 1, 0.0, 1.0]),
        "c": st.from_regex("cam[0-9]{3}", fullmatch=True),
        "p": st.sampled_from(["ac", "zzbc", "xxx", "x", "bca"]) | st.text("abcx", max_size=6),
        "r": st.booleans(),
    }  # fmt: skip
    edgy: dict[str, st.SearchStrategy[Any]] = {
        "v": st.text(min_size=5, max_size=7),
        "d": datetimes(),
        "u": uuids(),
        "e": st.sampled_from(["C", "", "a "]),
        "m": st.lists(finite32, max_size=5),
        "keyframes": st.lists(st.integers(-2, 3), max_size=4),
        "q": st.sampled_from([-0.0, -1e-300, 1.0000000000000002, -1, 2, 0.5, True])
        | st.floats(-2, 3),
        "c": st.sampled_from(["cam01", "xcam001", "cam0012", "CAM001", "cam٣٣٣", "cam 001"])
        | st.text(max_size=8),
        "p": st.text(max_size=6),
        "r": st.sampled_from([None, "true", 1]),
    }
    if key not in valid:
        return values()
    return st.sampled_from([0, 1, 2, 3]).flatmap(
        lambda pick: edgy.get(key, valid[key]) if pick == 0 else valid[key]
    )


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    weighted = st.sampled_from(DECLARED * 6 + KEYS[len(DECLARED) :])  # mostly declared keys
    keys = draw(st.lists(weighted, max_size=5, unique=True))
    if "r" not in keys and draw(st.integers(0, 4)):  # the required key, most of the time
        keys.append("r")
    record = {key: draw(typed_values(key) if draw(st.integers(0, 7)) else values()) for key in keys}
    # A documented difference (see above): not generated.
    assume(not any(isinstance(record.get(k), str) and record[k].endswith("\n")
                   for k in PATTERN_KEYS))  # fmt: skip
    return record


def as_domain(record: dict[str, Any]) -> dict[str, object]:
    """The values the server sees after decoding what the client sent."""
    decoded: dict[str, object] = {}
    for key, value in record.items():
        message = b.value(value)
        kind = message.WhichOneof("kind")
        if kind == "embedding_value":
            decoded[key] = array("f", message.embedding_value.values)
        elif kind == "int_list_value":
            decoded[key] = list(message.int_list_value.values)
        else:
            decoded[key] = b.python_value(message)
    return decoded


def server_accepts(validator: CompiledValidator, record: dict[str, Any]) -> bool:
    """Whether the server takes `record` as a new record."""
    normalised, problems = validator.check(as_domain(record))
    problems += missing_required(validator.required, None, normalised, UpdateMode.MERGE)
    if problems:
        return False
    size = encode_record({k: v for k, v in normalised.items() if v is not None}).size
    return record_size_problem(size) is None


def test_formats_are_really_checked() -> None:
    assert {"date-time", "uuid"} <= set(FormatChecker().checkers)


@pytest.mark.parametrize("allow_unknown", [False, True])
@settings(max_examples=600, deadline=None)
@given(record=records())
def test_validator_agrees_with_jsonschema(allow_unknown: bool, record: dict[str, Any]) -> None:
    validator, checker, _ = build(allow_unknown)
    assert server_accepts(validator, record) == checker.is_valid(record), record


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(batch=st.lists(records(), min_size=1, max_size=8))
def test_the_server_agrees_with_jsonschema_over_grpc(
    server: RunningServer, batch: list[dict[str, Any]]
) -> None:
    """The same agreement through ValidateMetadata on a real server and database."""
    try:
        b.get_schema(server.registry, "agree")
    except grpc.RpcError:
        response = server.registry.UpdateSchema(rpb.UpdateSchemaRequest(
            name="agree", expected_version=0, changes=[
                b.add_scalar("v", "varchar", 5), b.add_scalar("t", "text"),
                b.add_scalar("n", "number"), b.add_scalar("f", "boolean"),
                b.add_scalar("d", "datetime"), b.add_scalar("u", "uuid"),
                b.add_enum("e", ["a", "b", "c d"]), b.add_embedding("m", 3),
                b.add_scalar("gone", "text"), b.delete_key("gone"),
                b.add_scalar("purged", "number"), b.delete_key("purged", hard=True),
                b.add_constrained("q", "number", minimum=0, maximum=1),
                b.add_constrained("c", "varchar", max_length=8, pattern="^cam[0-9]{3}$"),
                b.add_constrained("p", "text", pattern="[ab]c|^x+$"),
                b.add_constrained("r", "boolean", "seen", required=True),
            ]))  # fmt: skip
        assert response.schema.version == 1
    exported = server.registry.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="agree"))
    checker = Draft202012Validator(
        __import__("json").loads(exported.json_schema), format_checker=FormatChecker()
    )
    reply = server.metadata.ValidateMetadata(
        mpb.ValidateMetadataRequest(
            schema="agree", records=[b.metadata_record(f"r{i}", r) for i, r in enumerate(batch)]
        )
    )
    rejected = {r.index for r in reply.invalid_records}
    for index, record in enumerate(batch):
        assert (index not in rejected) == checker.is_valid(record), record
