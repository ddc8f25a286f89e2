"""The JSON record form and the typed form are one contract (hypothesis, both databases).

Random bundles, valid and invalid, are sent in both forms to two schemas created by the
same changes, on a real server: results, violations, stored records, revisions and
idempotent replays must be identical. The typed form is built by the Python client's
rules (an int list for all-int lists, the empty one included; float32 lists otherwise).
A string for a key declared as an embedding is base64 in the JSON form, with no typed
equivalent, so embedding keys get number lists (sent as arrays or as their base64).
"""

from __future__ import annotations

import base64
import itertools
from array import array
from typing import Any

import grpc
import msgspec
import pytest
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import wire

from . import builders as b
from .conftest import RunningServer
from .test_validator_agreement import typed_values, values

_schemas = itertools.count()
KEYS = ["v", "t", "n", "f", "d", "u", "e", "m", "keyframes", "gone", "old", "purged", "x", "a/b"]
IDS = ["u0", "u1", "u2", "u3"]
EMBEDDINGS = ("m", "old")
MODES = {
    "merge": mpb.UPDATE_MODE_MERGE,
    "replace": mpb.UPDATE_MODE_REPLACE,
    "keep_existing": mpb.UPDATE_MODE_KEEP_EXISTING,
}


def create_schema(
    server: RunningServer, name: str, *, indexed: bool, allow_unknown: bool = False
) -> None:
    text = b.add_scalar("t", "text")
    number = b.add_scalar("n", "number")
    if indexed:
        text.add_scalar.indexed = number.add_scalar.indexed = True
    b.update_schema(
        server.registry, name, 0,
        b.add_scalar("v", "varchar", 5), text, number, b.add_scalar("f", "boolean"),
        b.add_scalar("d", "datetime"), b.add_scalar("u", "uuid"),
        b.add_enum("e", ["a", "b", "c d"]), b.add_embedding("m", 3),
        b.add_scalar("gone", "text"), b.delete_key("gone"),
        b.add_embedding("old", 2), b.delete_key("old"),
        b.add_scalar("purged", "number"), b.delete_key("purged", hard=True),
        b.set_options(allow_unknown),
    )  # fmt: skip


def typed_value(value: Any) -> mpb.Value:
    """What the Python client sends for a plain value."""
    message = mpb.Value()
    if isinstance(value, list) and all(type(x) is int for x in value):
        message.int_list_value.SetInParent()
        message.int_list_value.values.extend(value)
    elif isinstance(value, list):
        wire.set_floats(message.embedding_value, array("f", value).tobytes())
    else:
        message.CopyFrom(b.value(value))
    return message


def json_value(value: Any, base64_form: bool) -> Any:
    if base64_form and isinstance(value, list) and any(type(x) is float for x in value):
        return base64.b64encode(array("f", value).tobytes()).decode()
    return value


@st.composite
def updates(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    keys = draw(st.lists(st.sampled_from(KEYS[:9] * 4 + KEYS[9:]), max_size=5, unique=True))
    metadata = {k: draw(typed_values(k) if draw(st.integers(0, 5)) else values()) for k in keys}
    metadata = {k: v for k, v in metadata.items() if not (k in EMBEDDINGS and type(v) is str)}
    duid = draw(st.sampled_from(IDS) | st.sampled_from(["", "bad\nid"]))
    return duid, metadata, draw(st.sampled_from(list(MODES)))


def typed_request(schema: str, bundle: list[Any], partial: bool, key: str, coerce: bool) -> Any:
    request = mpb.ApplyBundleRequest(
        schema=schema, partial=partial, idempotency_key=key, coerce_strings=coerce
    )
    for duid, metadata, mode in bundle:
        update = request.updates.add(data_unit_id=duid, mode=MODES[mode])
        for name, value in metadata.items():
            update.metadata[name].CopyFrom(typed_value(value))
    return request


def json_request(
    schema: str, bundle: list[Any], partial: bool, key: str, b64: bool, coerce: bool
) -> Any:
    records = [
        {"data_unit_id": duid, "mode": mode,
         "metadata": {k: json_value(v, b64 and k in EMBEDDINGS) for k, v in metadata.items()}}
        for duid, metadata, mode in bundle
    ]  # fmt: skip
    return mpb.ApplyBundleRequest(
        schema=schema,
        partial=partial,
        idempotency_key=key,
        coerce_strings=coerce,
        updates_json=msgspec.json.encode(records),
    )


def outcome(server: RunningServer, request: Any) -> tuple[Any, ...]:
    """A call's result, comparable across forms: the response or the error and its details."""
    try:
        response = server.metadata.ApplyBundle(request)
    except grpc.RpcError as error:
        found: list[Any] = []
        for detail in b.details(error):
            if isinstance(detail, error_details_pb2.BadRequest):
                found.append([(v.field, v.description, v.reason) for v in detail.field_violations])
            elif isinstance(detail, mpb.BundleRejection):
                found.append(detail.SerializeToString(deterministic=True))
        return ("error", error.code(), error.details(), found)
    response.ClearField("schema_version")
    return ("ok", response.SerializeToString(deterministic=True))


def stored(server: RunningServer, schema: str) -> dict[str, Any]:
    reply = server.metadata.GetMetadata(mpb.GetMetadataRequest(schema=schema, data_unit_ids=IDS))
    return {
        r.data_unit_id: (r.revision, {k: b.python_value(v) for k, v in r.metadata.items()})
        for r in reply.records
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bundles=st.lists(st.lists(updates(), min_size=1, max_size=5), min_size=1, max_size=3),
    partial=st.booleans(),
    base64_form=st.booleans(),
    indexed=st.booleans(),
    allow_unknown=st.booleans(),
    coerce=st.booleans(),
)
def test_both_forms_give_the_same_results(
    server: RunningServer,
    bundles: list[list[Any]],
    partial: bool,
    base64_form: bool,
    indexed: bool,
    allow_unknown: bool,
    coerce: bool,
) -> None:
    """Also with allow_unknown_keys and coerce_strings, where the fast path steps aside."""
    number = next(_schemas)
    typed_schema, json_schema = f"typed-{number}", f"json-{number}"
    for name in (typed_schema, json_schema):
        create_schema(server, name, indexed=indexed, allow_unknown=allow_unknown)
    for step, bundle in enumerate(bundles):
        key = f"key-{step}"
        typed = typed_request(typed_schema, bundle, partial, key, coerce)
        as_json = json_request(json_schema, bundle, partial, key, base64_form, coerce)
        first = outcome(server, typed)
        assert outcome(server, as_json) == first
        assert stored(server, json_schema) == stored(server, typed_schema)
        # A retry with the same key and content replays the first result in both forms.
        replay = outcome(server, typed)
        assert outcome(server, as_json) == replay
        if first[0] == "ok":
            assert mpb.ApplyBundleResponse.FromString(replay[1]).replayed
    assert stored(server, json_schema) == stored(server, typed_schema)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(updates(), min_size=1, max_size=6), base64_form=st.booleans())
def test_validation_is_the_same_in_both_forms(
    server: RunningServer, batch: list[Any], base64_form: bool
) -> None:
    try:
        b.get_schema(server.registry, "validate-both")
    except grpc.RpcError:
        create_schema(server, "validate-both", indexed=False)
    typed = mpb.ValidateMetadataRequest(schema="validate-both")
    for duid, metadata, _ in batch:
        record = typed.records.add(data_unit_id=duid)
        for name, value in metadata.items():
            record.metadata[name].CopyFrom(typed_value(value))
    records = [
        {
            "data_unit_id": duid,
            "metadata": {k: json_value(v, base64_form and k in EMBEDDINGS) for k, v in m.items()},
        }
        for duid, m, _ in batch
    ]
    as_json = mpb.ValidateMetadataRequest(
        schema="validate-both", records_json=msgspec.json.encode(records)
    )
    assert server.metadata.ValidateMetadata(as_json) == server.metadata.ValidateMetadata(typed)


# --- the JSON form's own rules --------------------------------------------------------


@pytest.fixture
def cams(server: RunningServer) -> RunningServer:
    b.update_schema(
        server.registry, "cams", 0,
        b.add_scalar("camera_id", "varchar", 8), b.add_scalar("score", "number"),
        b.add_embedding("clip", 2),
    )  # fmt: skip
    return server


def apply_json(server: RunningServer, raw: bytes, **flags: Any) -> Any:
    return server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates_json=raw, **flags)
    )


def rejected(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details() or "", b.field_violations(raised.value)


def test_a_request_with_both_forms_is_refused(cams: RunningServer) -> None:
    request = mpb.ApplyBundleRequest(
        schema="cams",
        updates=[b.metadata_update("a", {"score": 1.0})],
        updates_json=b'[{"data_unit_id": "b", "metadata": {}}]',
    )
    code, message, _ = rejected(lambda: cams.metadata.ApplyBundle(request))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "both updates and updates_json" in message
    validate = mpb.ValidateMetadataRequest(
        schema="cams", records=[b.metadata_record("a", {})], records_json=b"[]"
    )
    code, message, _ = rejected(lambda: cams.metadata.ValidateMetadata(validate))
    assert "both records and records_json" in message
    assert b.stored(cams.metadata, "cams", "a", "b") == {}


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b'[{"data_unit_id": "a", "metadata": {"score": 1}},', "updates_json", "ends early"),
        (b'[{"data_unit_id": "a"} x]', "updates_json", "byte 23"),
        (b'{"data_unit_id": "a"}', "updates_json", "must be a JSON array"),
        (b'[{"data_unit_id": "a"}, 7]', "updates_json[1]", "must be a JSON object"),
        (b'[{"data_unit_id": 7}]', "updates_json[0].data_unit_id", "expected a string"),
        (b'[{"data_unit_id": "a", "metadata": [1]}]', "updates_json[0].metadata", "an object"),
        (b'[{"data_unit_id": "a", "metdata": {}}]', "updates_json[0]", '"metdata"'),
        (b'[{"data_unit_id": "a", "metadata": {"score": 1e400}}]',
         'updates_json[0].metadata["score"]', "1e400 is out of range"),
        (b'[{"data_unit_id": "a", "metadata": {"camera_id": "\\ud800"}}]', "updates_json",
         "unpaired surrogate"),
        (b'[{"data_unit_id": "a\xff"}]', "updates_json", "invalid UTF-8 (byte 20)"),
    ],
)  # fmt: skip
def test_malformed_json_names_the_record_or_the_byte(
    cams: RunningServer, raw: bytes, field: str, words: str
) -> None:
    code, message, violations = rejected(lambda: apply_json(cams, raw))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert words in message
    assert list(violations) == [field]
    assert b.stored(cams.metadata, "cams", "a") == {}


BIG = "1" + "0" * 400  # an integer literal no double can hold


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        (f'{{"score": {BIG}}}', 'updates_json[0].metadata["score"]'),
        (f'{{"score": [{BIG}, 1, 2, 3, 4]}}', 'updates_json[0].metadata["score"]'),
        (f'{{"keyframes": [{BIG}, 1, 2, 3, 4]}}', 'updates_json[0].metadata["keyframes"]'),
        (f'{{"clip": [1.5, {BIG}]}}', 'updates_json[0].metadata["clip"]'),
        ('{"score": 1e999, "score": 1}', "updates_json[0].metadata"),
    ],
)
def test_a_number_beyond_a_double_is_malformed_however_it_is_written(
    cams: RunningServer, metadata: str, field: str
) -> None:
    """As the proto says: the whole request is INVALID_ARGUMENT, in ApplyBundle (also
    partial) and ValidateMetadata, naming the record and key; never INTERNAL."""
    raw = (
        f'[{{"data_unit_id": "ok", "metadata": {{}}}}, '
        f'{{"data_unit_id": "a", "metadata": {metadata}}}]'
    ).encode()
    field = field.replace("[0]", "[1]", 1)
    validate = mpb.ValidateMetadataRequest(schema="cams", records_json=raw)
    for call, named in (
        (lambda: apply_json(cams, raw, partial=True), field),
        (lambda: cams.metadata.ValidateMetadata(validate),
         field.replace("updates_json", "records_json")),
    ):  # fmt: skip
        code, message, violations = rejected(call)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert list(violations) == [named]
        assert "out of range" in message
    assert b.stored(cams.metadata, "cams", "ok", "a") == {}


def test_keyframes_past_int64_are_a_violation_with_their_value_shown(cams: RunningServer) -> None:
    raw = f'[{{"data_unit_id": "a", "metadata": {{"keyframes": [{2**64}, 1, 2, 3, 4]}}}}]'
    code, _, violations = rejected(lambda: apply_json(cams, raw.encode()))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "18446744073709551616" in violations['updates[0].metadata["keyframes"]']


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deeply_nested_json_is_malformed_not_internal(cams: RunningServer, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for raw in (
        f'[{{"data_unit_id": "a", "metadata": {{"score": {nested}}}}}]'.encode(),
        f"[{nested}]".encode(),
    ):
        code, message, _ = rejected(lambda raw=raw: apply_json(cams, raw))
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert "nested too deeply" in message or "must be a JSON object" in message


def test_an_oversized_array_is_refused_by_its_count(cams: RunningServer) -> None:
    raw = b"[" + b",".join([b"{}"] * 200_000) + b"]"
    code, message, _ = rejected(lambda: apply_json(cams, raw))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "200000 updates in one request; the limit is 1000" in message


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b'[{"data_unit_id": "a", "ex`tra": 1}]', "updates_json[0]", '"ex`tra"'),
        (b'[{"data_unit_id": "\\\\ud800"}, {"data_unit_id": "\\ud800"}]',
         "updates_json", "\\ud800 (byte 48)"),
    ],
)  # fmt: skip
def test_malformed_input_names_the_right_place(
    cams: RunningServer, raw: bytes, field: str, words: str
) -> None:
    code, message, violations = rejected(lambda: apply_json(cams, raw))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert words in message
    assert list(violations) == [field]


def test_violations_are_named_as_in_the_typed_form(cams: RunningServer) -> None:
    raw = msgspec.json.encode(
        [
            {"data_unit_id": "ok", "metadata": {"score": 2}},
            {"data_unit_id": "bad", "metadata": {"camera_id": "x" * 9, "clip": "not base64",
                                                 "score": {"nested": 1}}, "mode": "upsert"},
        ]
    )  # fmt: skip
    code, message, violations = rejected(lambda: apply_json(cams, raw))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing was written" in message
    assert violations == {
        "updates[1]": 'record 1 (data_unit_id "bad"): unknown update mode "upsert"; use '
        "merge, replace or keep_existing (rule: mode)",
        'updates[1].metadata["camera_id"]': 'record 1 (data_unit_id "bad"): key "camera_id": '
        '"xxxxxxxxx" is 9 characters long; the limit is 8 (rule: max_length)',
        'updates[1].metadata["clip"]': 'record 1 (data_unit_id "bad"): key "clip": an embedding '
        "given as a string must be the standard base64 (with padding) of little-endian float32 "
        "values (rule: base64)",
        'updates[1].metadata["score"]': 'record 1 (data_unit_id "bad"): key "score": a JSON '
        'object is not a value: flatten nested objects into dotted keys ({"capture": {"temp": '
        '1}} as {"capture.temp": 1}) (rule: type)',
    }
    assert b.stored(cams.metadata, "cams", "ok") == {}


def test_partial_json_bundle_applies_the_valid_updates(cams: RunningServer) -> None:
    clip = base64.b64encode(array("f", [0.5, -1.5]).tobytes()).decode()
    raw = msgspec.json.encode(
        [
            {"data_unit_id": "a", "metadata": {"clip": clip, "score": 1}},
            {"data_unit_id": "b", "metadata": {"clip": "AAAAAA=="}},
            {"data_unit_id": "a", "metadata": {"score": None, "camera_id": "c1"}},
        ]
    )
    response = apply_json(cams, raw, partial=True)
    assert [r.outcome for r in response.results] == [
        mpb.UPDATE_OUTCOME_APPLIED, mpb.UPDATE_OUTCOME_REJECTED, mpb.UPDATE_OUTCOME_APPLIED,
    ]  # fmt: skip
    assert response.results[1].violations[0].rule == "embedding_size"
    assert b.stored(cams.metadata, "cams", "a", "b") == {
        "a": {"clip": [0.5, -1.5], "camera_id": "c1"}
    }


def test_more_than_1000_json_updates_is_refused(cams: RunningServer) -> None:
    raw = msgspec.json.encode([{"data_unit_id": f"u{i}"} for i in range(1001)])
    code, message, _ = rejected(lambda: apply_json(cams, raw))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "1001 updates in one request; the limit is 1000" in message


def test_a_schema_change_between_check_and_write_is_seen(cams: RunningServer) -> None:
    """Bundles are checked before their transaction against the newest cached version;
    once the schema moves on, the next bundle is checked against the new version."""
    apply_json(cams, b'[{"data_unit_id": "a", "metadata": {"score": 1}}]')
    b.update_schema(cams.registry, "cams", 1, b.delete_key("score"))
    code, _, violations = rejected(
        lambda: apply_json(cams, b'[{"data_unit_id": "b", "metadata": {"score": 2}}]')
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "soft-deleted" in violations['updates[0].metadata["score"]']
