"""Metadata validation rules per type, end to end through a real server on both databases."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest

from metareg.v1 import metadata_pb2 as mpb

from . import builders as b
from .conftest import RunningServer

UUID4 = "0b5d2f7e-3c1a-4e9b-8f6d-2a7c9e1b4d30"


@pytest.fixture
def cams(server: RunningServer) -> RunningServer:
    b.update_schema(
        server.registry, "cams", 0,
        b.add_scalar("camera_id", "varchar", max_length=8), b.add_scalar("notes", "text"),
        b.add_scalar("score", "number"), b.add_scalar("ok", "boolean"),
        b.add_scalar("at", "datetime"), b.add_scalar("id", "uuid"),
        b.add_enum("weather", ["sunny", "rain"]), b.add_embedding("clip", 4),
        b.add_scalar("old", "text"),
    )  # fmt: skip
    b.update_schema(server.registry, "cams", 1, b.delete_key("old"))
    return server


def validate(
    server: RunningServer, *records: mpb.MetadataRecord, **flags: Any
) -> mpb.ValidateMetadataResponse:
    request = mpb.ValidateMetadataRequest(schema="cams", records=records, **flags)
    return server.metadata.ValidateMetadata(request)


def violations_of(
    server: RunningServer, metadata: dict[str, object], data_unit_id: str = "u"
) -> list[mpb.Violation]:
    response = validate(server, b.metadata_record(data_unit_id, metadata))
    return [v for r in response.invalid_records for v in r.violations]


def rules_of(server: RunningServer, metadata: dict[str, object]) -> set[tuple[str, str]]:
    return {(v.key, v.rule) for v in violations_of(server, metadata)}


def apply(
    server: RunningServer, *updates: mpb.MetadataUpdate, schema: str = "cams", **flags: Any
) -> mpb.ApplyBundleResponse:
    return server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema=schema, updates=updates, **flags)
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"camera_id": "x" * 9}, {("camera_id", "max_length")}),
        ({"camera_id": 5}, {("camera_id", "type")}),
        ({"notes": "a\x00b"}, {("notes", "nul_character")}),
        ({"score": True}, {("score", "type")}),
        ({"score": "95"}, {("score", "type")}),
        ({"score": math.nan}, {("score", "finite")}),
        ({"score": math.inf}, {("score", "finite")}),
        ({"score": -math.inf}, {("score", "finite")}),
        ({"ok": "true"}, {("ok", "type")}),
        ({"ok": 1}, {("ok", "type")}),
        ({"at": "2024-02-30T00:00:00Z"}, {("at", "datetime")}),
        ({"at": "yesterday"}, {("at", "datetime")}),
        ({"at": "2024-05-01 12:00:00"}, {("at", "datetime")}),
        ({"at": "2024-05-01T12:00:00+24:00"}, {("at", "datetime")}),
        ({"id": "0b5d2f7e-3c1a-1e9b-8f6d-2a7c9e1b4d30"}, {("id", "uuid")}),  # version 1
        ({"id": UUID4.replace("-", "")}, {("id", "uuid")}),
        ({"weather": "snow"}, {("weather", "enum_option")}),
        ({"clip": [0.1, 0.2, 0.3]}, {("clip", "embedding_size")}),
        ({"clip": [0.1, math.nan, 0.3, 0.4]}, {("clip", "finite")}),
        ({"clip": "0.1,0.2"}, {("clip", "type")}),
        ({"keyframes": [3, -1]}, {("keyframes", "keyframes")}),
        ({"keyframes": [1.0, 2.0]}, {("keyframes", "type")}),
        ({"undeclared": 1}, {("undeclared", "unknown_key")}),
        ({"old": "soft-deleted"}, {("old", "deleted_key")}),
        ({"bad/key": 1}, {("bad/key", "key_name")}),
    ],
)
def test_each_rule_is_enforced(
    cams: RunningServer, metadata: dict[str, object], expected: set[tuple[str, str]]
) -> None:
    assert rules_of(cams, metadata) == expected


def test_valid_values_of_every_type(cams: RunningServer) -> None:
    valid = {
        "camera_id": "x" * 8, "notes": "n" * 20000, "score": -1e300, "ok": False,
        "at": "2024-05-01T12:00:00.5-03:30", "id": UUID4.upper(), "weather": "rain",
        "clip": [1, 2, 3, 4], "keyframes": [0, 2**62],
    }  # fmt: skip
    response = validate(cams, b.metadata_record("u", valid))
    assert response.ok, response
    assert response.valid_count == 1


def test_values_are_normalised_on_store_and_read_back(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u1", {
        "at": "2024-05-01T12:00:00+02:00", "id": UUID4.upper(), "clip": [1, 2, 3, 4],
    }))  # fmt: skip
    apply(cams, b.metadata_update("u2", {"at": "2024-05-01T12:00:00.1234567"}))
    got = b.stored(cams.metadata, "cams", "u1", "u2")
    assert got["u1"]["at"] == "2024-05-01T10:00:00.000000Z"
    assert got["u1"]["id"] == UUID4
    assert got["u1"]["clip"] == [1.0, 2.0, 3.0, 4.0]
    assert got["u2"]["at"] == "2024-05-01T12:00:00.123456Z"  # naive means UTC


def test_every_violation_is_reported_with_record_key_rule_and_value(cams: RunningServer) -> None:
    response = validate(
        cams,
        b.metadata_record("fine", {"score": 1.0}),
        b.metadata_record("u-1", {"camera_id": "toolongvalue", "score": "x", "weather": "fog"}),
        b.metadata_record("u-2", {"clip": [1.0]}),
    )
    assert not response.ok
    assert (response.valid_count, response.invalid_count) == (1, 2)
    first, second = response.invalid_records
    assert (first.index, first.data_unit_id, second.index) == (1, "u-1", 2)
    by_key = {v.key: v for v in first.violations}
    assert set(by_key) == {"camera_id", "score", "weather"}
    camera = by_key["camera_id"]
    assert camera.field == 'records[1].metadata["camera_id"]'
    assert (camera.rule, camera.value, camera.data_unit_id) == (
        "max_length", '"toolongvalue"', "u-1")  # fmt: skip
    assert camera.description == (
        'record 1 (data_unit_id "u-1"): key "camera_id": "toolongvalue" is 12 characters '
        "long; the limit is 8 (rule: max_length)"
    )
    assert 'is not one of: "sunny", "rain"' in by_key["weather"].description


def test_long_values_are_shortened_in_messages(cams: RunningServer) -> None:
    (violation,) = violations_of(cams, {"camera_id": "y" * 5000})
    assert len(violation.value) <= 60
    assert len(violation.description) < 300


@pytest.mark.parametrize(
    ("data_unit_id", "fragment"),
    [("", "must not be empty"), ("x" * 257, "257 characters long"), ("a\nb", "control")],
)
def test_data_unit_id_rules(cams: RunningServer, data_unit_id: str, fragment: str) -> None:
    (violation,) = violations_of(cams, {"score": 1.0}, data_unit_id)
    assert violation.rule == "data_unit_id"
    assert violation.field == "records[0].data_unit_id"
    assert fragment in violation.description
    assert not violations_of(cams, {"score": 1.0}, "x" * 256)


def test_record_size_limit_is_256_kib_when_stored(cams: RunningServer) -> None:
    overhead = len('{"notes":""}')
    at_limit = {"notes": "n" * (256 * 1024 - overhead)}
    assert not violations_of(cams, at_limit)
    (violation,) = violations_of(cams, {"notes": "n" * (256 * 1024 - overhead + 1)})
    assert (violation.rule, violation.key, violation.field) == ("record_size", "", "records[0]")
    assert "262145 bytes" in violation.description
    # A merge can grow a record past the limit: checked on the merged result.
    apply(cams, b.metadata_update("big", {"notes": "n" * 200_000}))
    with pytest.raises(grpc.RpcError) as caught:
        apply(
            cams,
            b.metadata_update(
                "big",
                {
                    "camera_id": "c",
                    "id": UUID4,
                    "weather": "rain",
                    "at": "2024-01-01T00:00:00Z",
                    "ok": True,
                    "score": 1.0,
                    "clip": [1.0] * 4,
                },
            ),
            b.metadata_update("big", {"keyframes": list(range(20_000))}),
        )
    assert b.field_violations(caught.value).keys() == {"updates[1]"}


def test_an_oversized_record_with_other_problems_reports_its_size_too(
    cams: RunningServer,
) -> None:
    metadata: dict[str, object] = {"notes": "n" * 300_000, "score": "bad"}
    assert rules_of(cams, metadata) == {("score", "type"), ("", "record_size")}
    response = apply(cams, b.metadata_update("u", metadata), partial=True)
    assert {(v.key, v.rule) for v in response.results[0].violations} == {
        ("score", "type"), ("", "record_size")}  # fmt: skip
    # The valid part alone is within the limit: only the broken rule is reported.
    assert rules_of(cams, {"notes": "n" * 1000, "score": "bad"}) == {("score", "type")}


def test_a_value_without_a_kind_is_rejected(cams: RunningServer) -> None:
    record = mpb.MetadataRecord(data_unit_id="u")
    record.metadata["score"].CopyFrom(mpb.Value())
    (violation,) = [v for r in validate(cams, record).invalid_records for v in r.violations]
    assert (violation.key, violation.rule) == ("score", "value_missing")


def test_unknown_keys_follow_the_schema_flag(cams: RunningServer) -> None:
    assert rules_of(cams, {"extra": "x"}) == {("extra", "unknown_key")}
    b.update_schema(cams.registry, "cams", 2, b.set_options(True))
    assert rules_of(cams, {"extra": "x", "n": 2.0, "f": False}) == set()
    assert rules_of(cams, {"vec": [0.5, 0.25]}) == {("vec", "unknown_key_value")}
    assert rules_of(cams, {"old": "x"}) == {("old", "deleted_key")}  # still blocked


def test_coerce_strings_for_csv_sources(cams: RunningServer) -> None:
    record = b.metadata_record("u", {"score": " 95.5 ", "ok": "TRUE"})
    assert not validate(cams, record).ok
    assert validate(cams, record, coerce_strings=True).ok
    apply(cams, b.metadata_update("u", {"score": "95", "ok": "false"}), coerce_strings=True)
    assert b.stored(cams.metadata, "cams", "u")["u"] == {"score": 95.0, "ok": False}
    bad = b.metadata_record("u", {"score": "ninety", "ok": "yes"})
    assert {(v.key, v.rule) for r in validate(cams, bad, coerce_strings=True).invalid_records
            for v in r.violations} == {("score", "type"), ("ok", "type")}  # fmt: skip


def test_validate_against_a_past_version(cams: RunningServer) -> None:
    record = b.metadata_record("u", {"old": "x"})
    assert validate(cams, record, schema_version=1).ok  # "old" was active in version 1
    assert not validate(cams, record).ok


def test_unknown_schema_is_not_found_everywhere(server: RunningServer) -> None:
    calls = [
        lambda: server.metadata.ValidateMetadata(mpb.ValidateMetadataRequest(schema="nope")),
        lambda: server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="nope")),
        lambda: server.metadata.GetMetadata(mpb.GetMetadataRequest(schema="nope")),
        lambda: server.metadata.DeleteMetadata(mpb.DeleteMetadataRequest(schema="nope")),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_limits_name_the_count(cams: RunningServer) -> None:
    updates = [b.metadata_update(f"u{i}", {"score": 1.0}) for i in range(1001)]
    for call in (
        lambda: apply(cams, *updates),
        lambda: cams.metadata.ValidateMetadata(mpb.ValidateMetadataRequest(
            schema="cams", records=[b.metadata_record("u", {})] * 1001)),
        lambda: cams.metadata.GetMetadata(
            mpb.GetMetadataRequest(schema="cams", data_unit_ids=["u"] * 1001)),
        lambda: cams.metadata.DeleteMetadata(
            mpb.DeleteMetadataRequest(schema="cams", data_unit_ids=["u"] * 1001)),
    ):  # fmt: skip
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "1001" in caught.value.details()
        assert "limit is 1000" in caught.value.details()
    assert len(apply(cams, *updates[:1000]).results) == 1000
