"""Key constraints and descriptions end to end, through a real server on both databases:
minimum/maximum, RE2 patterns, required (with every update mode), what a constraint
change does to stored records, descriptions, versions and the JSON Schema export."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer

MERGE, REPLACE, KEEP = mpb.UPDATE_MODE_MERGE, mpb.UPDATE_MODE_REPLACE, mpb.UPDATE_MODE_KEEP_EXISTING


@pytest.fixture
def cams(server: RunningServer) -> RunningServer:
    b.update_schema(
        server.registry, "cams", 0,
        b.add_constrained("quality_score", "number", "share of sharp pixels",
                          minimum=0, maximum=1),
        b.add_constrained("camera_id", "varchar", max_length=16, pattern="^cam[0-9]{3}$"),
        b.add_constrained("notes", "text", pattern="(a+)+$"),
        b.add_constrained("captured_at", "datetime", required=True),
        b.add_scalar("lens", "text"),
    )  # fmt: skip
    return server


def apply(server: RunningServer, *updates: mpb.MetadataUpdate, **flags: Any) -> Any:
    return server.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates=updates, **flags)
    )


def apply_json(server: RunningServer, updates: list[dict[str, Any]]) -> Any:
    raw = json.dumps(updates).encode()
    return server.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="cams", updates_json=raw))


def rejected(call: Any) -> tuple[grpc.StatusCode, list[mpb.Violation]]:
    """The status and the violations of a rejected atomic bundle."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    rejection = next(d for d in b.details(caught.value) if isinstance(d, mpb.BundleRejection))
    return caught.value.code(), [v for r in rejection.results for v in r.violations]


def validate(server: RunningServer, *records: mpb.MetadataRecord) -> list[mpb.Violation]:
    response = server.metadata.ValidateMetadata(
        mpb.ValidateMetadataRequest(schema="cams", records=records)
    )
    return [v for r in response.invalid_records for v in r.violations]


AT = "2024-05-01T10:00:00Z"


# --- minimum and maximum -----------------------------------------------------------


@pytest.mark.parametrize("score", [0, 0.0, -0.0, 1, 1.0, 0.5, 5e-324])
def test_bounds_are_inclusive(cams: RunningServer, score: float) -> None:
    apply(cams, b.metadata_update("u", {"quality_score": score, "captured_at": AT}))
    assert apply_json(cams, [{"data_unit_id": "j", "metadata": {"quality_score": score,
                                                                "captured_at": AT}}])  # fmt: skip
    stored = b.stored(cams.metadata, "cams", "u", "j")
    assert stored["u"]["quality_score"] == stored["j"]["quality_score"] == float(score)


@pytest.mark.parametrize(
    ("score", "rule", "words"),
    [
        (-1e-9, "minimum", "is below the minimum 0"),
        (-5e-324, "minimum", "is below the minimum 0"),
        (1.0000000000000002, "maximum", "is above the maximum 1"),
        (2, "maximum", "is above the maximum 1"),
    ],
)
def test_values_outside_the_bounds_are_refused(
    cams: RunningServer, score: float, rule: str, words: str
) -> None:
    for send in (
        lambda: apply(cams, b.metadata_update("u7", {"quality_score": score, "captured_at": AT})),
        lambda: apply_json(cams, [{"data_unit_id": "u7", "metadata": {
            "quality_score": score, "captured_at": AT}}]),
    ):  # fmt: skip
        code, violations = rejected(send)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        (violation,) = violations
        assert (violation.field, violation.key, violation.rule) == (
            'updates[0].metadata["quality_score"]', "quality_score", rule)  # fmt: skip
        assert violation.data_unit_id == "u7"
        assert violation.value == repr(float(score))
        assert words in violation.description
        assert "u7" in violation.description


# --- patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("camera_id", "ok"),
    [("cam001", True), ("cam999", True), ("cam01", False), ("xcam001", False),
     ("cam0012", False), ("CAM001", False), ("cam001\n", False), ("cam٣٣٣", False)],
)  # fmt: skip
def test_varchar_pattern(cams: RunningServer, camera_id: str, ok: bool) -> None:
    found = validate(cams, b.metadata_record("u", {"camera_id": camera_id, "captured_at": AT}))
    if ok:
        assert found == []
    else:
        assert [(v.key, v.rule, v.value) for v in found] == [
            ("camera_id", "pattern", f'"{camera_id}"')
        ]
        assert "does not match the pattern" in found[0].description


def test_a_hostile_pattern_runs_in_linear_time(cams: RunningServer) -> None:
    """(a+)+$ against a long run of a's and a final "!" backtracks exponentially in a
    backtracking engine; RE2 answers at once, and the call returns."""
    hostile = "a" * 200_000 + "!"
    for update in (b.metadata_update("u", {"notes": hostile, "captured_at": AT}),):
        code, violations = rejected(lambda u=update: apply(cams, u))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [(v.key, v.rule) for v in violations] == [("notes", "pattern")]
    found = validate(cams, b.metadata_record("u", {"notes": hostile, "captured_at": AT}))
    assert [(v.key, v.rule) for v in found] == [("notes", "pattern")]
    assert validate(cams, b.metadata_record("u", {"notes": "a" * 200_000, "captured_at": AT})) == []


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=cam)", "invalid perl operator"),
        ("(?<!x)y", "invalid perl operator"),
        ("a{1001}", "invalid repetition size"),
        ("[z-a]", "invalid character class range"),
        ("", "must not be empty"),
        ("a" * 1025, "the limit is 1024"),
    ],
)
def test_patterns_re2_refuses(server: RunningServer, pattern: str, words: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(server.registry, "s", 0, b.add_scalar("ok", "text"),
                        b.add_constrained("camera_id", "varchar", pattern=pattern))  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    description = b.field_violations(caught.value)["changes[1]"]
    assert 'key "camera_id"' in description
    assert words in description
    if 0 < len(pattern) < 50:
        assert f'pattern "{pattern}"' in description


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (b.add_constrained("s", "varchar", minimum=1), "minimum applies only to number"),
        (b.add_constrained("s", "datetime", maximum=1), "maximum applies only to number"),
        (b.add_constrained("s", "number", pattern="x"), "pattern applies only to varchar and text"),
        (b.add_constrained("s", "enum", values=["a"], pattern="a"), "pattern applies only"),
        (b.add_constrained("s", "number", minimum=2, maximum=1), "minimum 2 is above maximum 1"),
        (b.add_constrained("s", "number", minimum=float("nan")), "must be a finite number"),
        (b.add_constrained("s", "number", maximum=float("inf")), "must be a finite number"),
        (b.add_constrained("s", "text", "x" * 1025), "description is 1025 characters long"),
        (b.add_constrained("s", "text", "bell\x07"), "control character U+0007"),
    ],
)
def test_constraints_that_do_not_fit_the_key(
    server: RunningServer, change: spb.SchemaChange, words: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(server.registry, "s", 0, change)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in b.field_violations(caught.value)["changes[0]"]


# --- required ------------------------------------------------------------------------


def test_required_on_a_new_record_whatever_the_mode(cams: RunningServer) -> None:
    for mode in (MERGE, REPLACE, KEEP):
        code, violations = rejected(lambda m=mode: apply(
            cams, b.metadata_update("new", {"lens": "wide"}, m)))  # fmt: skip
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        (violation,) = violations
        assert (violation.key, violation.rule, violation.value) == ("captured_at", "required", "")
        assert violation.field == 'updates[0].metadata["captured_at"]'
        assert "the update would create the record without it" in violation.description
    code, violations = rejected(lambda: apply(
        cams, b.metadata_update("new", {"lens": "wide", "captured_at": None})))  # fmt: skip
    assert [(v.rule, v.value) for v in violations] == [("required", "null")]


def test_required_against_the_stored_record(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u", {"captured_at": AT, "lens": "wide"}))
    # merge and keep_existing keep the stored value; keep_existing ignores nulls.
    apply(cams, b.metadata_update("u", {"lens": "tele"}, MERGE))
    apply(cams, b.metadata_update("u", {"lens": "zoom", "captured_at": None}, KEEP))
    apply(cams, b.metadata_update("u", {"quality_score": 0.5}, KEEP))
    # a null removes it in merge mode, and replace without it drops it: both refused.
    for update, words in (
        (b.metadata_update("u", {"captured_at": None}, MERGE), "a null would remove it"),
        (b.metadata_update("u", {"lens": "x"}, REPLACE), "a replace without it would remove it"),
    ):
        _code, violations = rejected(lambda u=update: apply(cams, u))
        assert [(v.key, v.rule) for v in violations] == [("captured_at", "required")]
        assert words in violations[0].description
    apply(cams, b.metadata_update("u", {"lens": "x", "captured_at": AT}, REPLACE))
    assert b.stored(cams.metadata, "cams", "u")["u"] == {
        "lens": "x", "captured_at": "2024-05-01T10:00:00.000000Z"}  # fmt: skip


def test_required_follows_the_updates_of_one_bundle_in_order(cams: RunningServer) -> None:
    response = apply(cams, b.metadata_update("u", {"captured_at": AT}),
                     b.metadata_update("u", {"lens": "wide"}))  # fmt: skip
    assert [r.outcome for r in response.results] == [mpb.UPDATE_OUTCOME_APPLIED] * 2
    response = apply(cams, b.metadata_update("v", {"lens": "wide"}),
                     b.metadata_update("v", {"captured_at": AT}), partial=True)  # fmt: skip
    assert [r.outcome for r in response.results] == [
        mpb.UPDATE_OUTCOME_REJECTED, mpb.UPDATE_OUTCOME_APPLIED]  # fmt: skip


def test_validate_takes_each_record_as_an_update_of_the_stored_one(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("stored", {"captured_at": AT}))
    assert validate(cams, b.metadata_record("stored", {"lens": "wide"})) == []
    found = validate(cams, b.metadata_record("fresh", {"lens": "wide"}),
                     b.metadata_record("stored", {"captured_at": None}))  # fmt: skip
    assert [(v.index, v.key, v.rule) for v in found] == [
        (0, "captured_at", "required"), (1, "captured_at", "required")]  # fmt: skip
    # The JSON form's modes count, and records of one data unit chain in order.
    records = [
        {"data_unit_id": "stored", "metadata": {"lens": "x"}, "mode": "replace"},
        {"data_unit_id": "chain", "metadata": {"captured_at": AT}},
        {"data_unit_id": "chain", "metadata": {"lens": "x"}},
        {"data_unit_id": "stored", "metadata": {"lens": "y"}, "mode": "keep_existing"},
    ]
    response = cams.metadata.ValidateMetadata(mpb.ValidateMetadataRequest(
        schema="cams", records_json=json.dumps(records).encode()))  # fmt: skip
    assert [r.index for r in response.invalid_records] == [0]
    assert response.valid_count == 3
    assert b.stored(cams.metadata, "cams", "chain") == {}  # validation never writes


def test_update_by_filter_and_delete_respect_required(cams: RunningServer) -> None:
    apply(cams, b.metadata_update("u", {"captured_at": AT, "lens": "wide"}))
    with pytest.raises(grpc.RpcError) as caught:
        cams.metadata.UpdateByFilter(mpb.UpdateByFilterRequest(schema="cams",
            filter='lens = "wide"', metadata={"captured_at": b.value(None)}))  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "required" in caught.value.details()
    deleted = cams.metadata.DeleteMetadata(mpb.DeleteMetadataRequest(
        schema="cams", data_unit_ids=["u"]))  # fmt: skip
    assert deleted.deleted_count == 1


def test_a_required_embedding(server: RunningServer) -> None:
    b.update_schema(server.registry, "cams", 0, b.add_scalar("lens", "text"),
                    b.add_constrained("clip", "embedding", size=2, required=True))  # fmt: skip
    _code, violations = rejected(lambda: apply(server, b.metadata_update("u", {"lens": "x"})))
    assert [(v.key, v.rule) for v in violations] == [("clip", "required")]
    apply(server, b.metadata_update("u", {"clip": [0.5, 1.5]}))
    apply(server, b.metadata_update("u", {"lens": "x"}))
    assert validate(server, b.metadata_record("u", {"lens": "y"})) == []
    assert [v.rule for v in validate(server, b.metadata_record("w", {"lens": "y"}))] == [
        "required"]  # fmt: skip


def test_a_soft_deleted_required_key_is_not_required(cams: RunningServer) -> None:
    b.update_schema(cams.registry, "cams", 1, b.delete_key("captured_at"))
    apply(cams, b.metadata_update("u", {"lens": "wide"}))
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(cams.registry, "cams", 2, b.restore_key("captured_at"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    impact = next(d for d in b.details(caught.value) if isinstance(d, spb.SchemaImpact))
    assert dict(impact.missing_records_by_key) == {"captured_at": 1}
    restored = b.update_schema(cams.registry, "cams", 2, b.restore_key("captured_at"), force=True)
    assert b.keys_of(restored.schema)["captured_at"].constraints.required


# --- constraint changes against stored records ----------------------------------------


@pytest.fixture
def loaded(server: RunningServer) -> RunningServer:
    b.update_schema(server.registry, "cams", 0, b.add_scalar("score", "number"),
                    b.add_scalar("camera_id", "varchar"), b.add_scalar("lens", "text"),
                    b.add_embedding("clip", 2))  # fmt: skip
    apply(server, *[
        b.metadata_update(f"u{i:02d}", {"score": i / 10, "camera_id": f"cam{i:03d}"
                          if i % 3 else f"CAM-{i}", **({"lens": "wide"} if i % 2 else {}),
                          **({"clip": [1.0, 2.0]} if i < 4 else {})})
        for i in range(15)
    ])  # fmt: skip
    return server


@pytest.mark.parametrize(
    ("change", "by_key", "missing", "invalid"),
    [
        (b.set_constraints("score", minimum=0.35), {"score": 4}, {}, 4),
        (b.set_constraints("score", maximum=1.05), {"score": 4}, {}, 4),
        (b.set_constraints("score", minimum=0.2, maximum=1.2), {"score": 4}, {}, 4),
        (b.set_constraints("camera_id", pattern="^cam[0-9]{3}$"), {"camera_id": 5}, {}, 5),
        (b.set_constraints("lens", required=True), {}, {"lens": 8}, 8),
        (b.set_constraints("clip", required=True), {}, {"clip": 11}, 11),
        (b.add_constrained("site", "text", required=True), {}, {"site": 15}, 15),
        (b.set_constraints("score", minimum=1.35, required=True), {"score": 14},
         {"score": 14}, 14),
        # Several at once: each record is counted once (u00-u03 fail both rules).
        ((b.set_constraints("score", minimum=0.35), b.set_constraints("lens", required=True)),
         {"score": 4}, {"lens": 8}, 10),
        ((b.set_constraints("lens", required=True), b.add_constrained("site", "text",
          required=True), b.set_constraints("clip", required=True)), {},
         {"lens": 8, "site": 15, "clip": 11}, 15),
    ],
)  # fmt: skip
def test_a_new_constraint_is_counted_against_stored_records(
    loaded: RunningServer,
    change: spb.SchemaChange | tuple[spb.SchemaChange, ...],
    by_key: dict[str, int],
    missing: dict[str, int],
    invalid: int,
) -> None:
    changes = change if isinstance(change, tuple) else (change,)
    preview = b.update_schema(loaded.registry, "cams", 1, *changes, validate_only=True)
    assert preview.impact.invalid_records == invalid
    assert dict(preview.impact.invalid_records_by_key) == by_key
    assert dict(preview.impact.missing_records_by_key) == missing
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(loaded.registry, "cams", 1, *changes)
    error = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{invalid} stored record(s) would become invalid" in error.details()
    impact = next(d for d in b.details(error) if isinstance(d, spb.SchemaImpact))
    assert impact.invalid_records == invalid
    assert list(impact.sample_data_unit_ids) == sorted(impact.sample_data_unit_ids)
    assert len(impact.sample_data_unit_ids) == min(invalid, 10)
    assert b.get_schema(loaded.registry, "cams").version == 1
    before = b.stored(loaded.metadata, "cams", *[f"u{i:02d}" for i in range(15)])
    forced = b.update_schema(loaded.registry, "cams", 1, *changes, force=True)
    assert forced.schema.version == 2
    after = b.stored(loaded.metadata, "cams", *[f"u{i:02d}" for i in range(15)])
    removed = {(duid, key) for duid, values in before.items() for key in values
               if key not in after[duid]}  # fmt: skip
    assert len(removed) == sum(by_key.values())  # invalid values go; nothing is invented
    assert all(after[duid].items() <= before[duid].items() for duid in before)


def test_force_keeps_a_record_that_lacks_a_required_key_until_an_update_supplies_it(
    loaded: RunningServer,
) -> None:
    b.update_schema(loaded.registry, "cams", 1, b.set_constraints("lens", required=True),
                    force=True)  # fmt: skip
    assert "lens" not in b.stored(loaded.metadata, "cams", "u00")["u00"]
    _code, violations = rejected(lambda: apply(loaded, b.metadata_update("u00", {"score": 0.5})))
    assert [(v.key, v.rule) for v in violations] == [("lens", "required")]
    apply(loaded, b.metadata_update("u00", {"lens": "tele"}))


def test_loosening_needs_no_check(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "cams", 1,
                    b.set_constraints("score", minimum=0, maximum=2, required=True),
                    b.set_constraints("camera_id", pattern="^(cam|CAM)"))  # fmt: skip
    for version, change in enumerate([
        b.set_constraints("score", minimum=-1, maximum=2, required=True),
        b.set_constraints("score", maximum=3),  # minimum and required removed
        b.set_constraints("score"),
        b.set_constraints("camera_id"),
    ], start=2):  # fmt: skip
        response = b.update_schema(loaded.registry, "cams", version, change)
        assert response.changed
        assert response.impact.invalid_records == 0
    assert not b.keys_of(b.get_schema(loaded.registry, "cams"))["score"].HasField("constraints")


def test_changing_the_type_keeps_the_constraints_it_takes(loaded: RunningServer) -> None:
    b.update_schema(loaded.registry, "cams", 1, b.set_constraints("camera_id", pattern="[0-9]",
                                                                  required=True))  # fmt: skip
    response = b.update_schema(loaded.registry, "cams", 2, b.set_scalar("camera_id", "text"))
    assert b.keys_of(response.schema)["camera_id"].constraints == b.constraints(
        pattern="[0-9]", required=True)  # fmt: skip
    response = b.update_schema(loaded.registry, "cams", 3, b.set_scalar("camera_id", "number"),
                               force=True)  # fmt: skip
    assert "drops pattern, which number does not take" in response.applied_changes[0]
    assert b.keys_of(response.schema)["camera_id"].constraints == b.constraints(required=True)


# --- descriptions, versions and the export -------------------------------------------------


def test_descriptions_and_constraints_are_versioned(cams: RunningServer) -> None:
    long = "é" * 1024
    response = b.update_schema(cams.registry, "cams", 1, b.set_description("lens", long),
                               b.set_description("quality_score", ""))  # fmt: skip
    assert list(response.applied_changes) == [
        "set_description lens", "remove_description quality_score"]  # fmt: skip
    assert response.impact.invalid_records == 0
    b.update_schema(cams.registry, "cams", 2, b.set_constraints("quality_score", minimum=-1))
    first, second, third = (b.keys_of(b.get_schema(cams.registry, "cams", v)) for v in (1, 2, 3))
    assert first["quality_score"].description == "share of sharp pixels"
    assert first["quality_score"].constraints == b.constraints(minimum=0, maximum=1)
    assert second["lens"].description == long
    assert second["quality_score"].description == ""
    assert third["quality_score"].constraints == b.constraints(minimum=-1)
    unchanged = b.update_schema(cams.registry, "cams", 3, b.set_description("lens", long))
    assert not unchanged.changed
    history = cams.registry.ListSchemaVersions(rpb.ListSchemaVersionsRequest(name="cams"))
    assert list(history.versions[0].changes) == ["set_constraints quality_score [minimum -1]"]
    with pytest.raises(grpc.RpcError) as caught:
        b.update_schema(cams.registry, "cams", 3, b.set_description("lens", long + "x"))
    assert "description is 1025 characters long; the limit is 1024" in caught.value.details()


def test_the_json_schema_export_carries_constraints_and_descriptions(cams: RunningServer) -> None:
    exported = cams.registry.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="cams"))
    document = json.loads(exported.json_schema)
    properties = document["properties"]
    assert properties["quality_score"] == {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 1,
        "description": "share of sharp pixels",
    }
    assert properties["camera_id"]["pattern"] == "^cam[0-9]{3}$"
    assert document["required"] == ["captured_at"]
    assert {"type": "null"} not in properties["captured_at"]["anyOf"]


def test_import_documents_take_the_full_form(server: RunningServer) -> None:
    def imported(document: dict[str, Any], version: int, **flags: Any) -> Any:
        struct = b.struct_document(document)
        return server.registry.ImportSchema(rpb.ImportSchemaRequest(
            name="cams", expected_version=version, document=struct, **flags))  # fmt: skip

    document = {
        "quality_score": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "share of sharp pixels", "indexed": True},
        "camera_id": {"type": "varchar", "max_length": 16, "pattern": "^cam[0-9]{3}$"},
        "captured_at": {"type": "datetime", "required": True},
        "weather": {"type": "enum", "values": ["sunny"], "required": True, "description": "sky"},
        "clip": {"type": "embedding", "size": 2, "description": "CLIP"},
    }  # fmt: skip
    keys = b.keys_of(imported(document, 0).schema)
    assert keys["quality_score"].constraints == b.constraints(minimum=0, maximum=1)
    assert keys["quality_score"].description == "share of sharp pixels"
    assert keys["camera_id"].constraints.pattern == "^cam[0-9]{3}$"
    assert keys["weather"].constraints.required
    assert keys["weather"].description == "sky"
    assert keys["clip"].description == "CLIP"
    assert not imported(document, 1).changed  # the same document again changes nothing
    # The document is the desired state: an entry without them removes them.
    document["quality_score"] = {"type": "number", "indexed": True}
    response = imported(document, 1)
    assert sorted(response.applied_changes) == [
        "remove_description quality_score", "set_constraints quality_score [none]"]  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        imported({**document, "lens": {"type": "boolean", "pattern": "x"},
                  "id": {"type": "text", "minimum": 1}, "n": {"type": "number", "minimum": "0"},
                  "r": {"type": "text", "required": "yes"}}, 2)  # fmt: skip
    violations = b.field_violations(caught.value)
    assert "unexpected field(s) pattern for type boolean" in violations['document["lens"]']
    assert "unexpected field(s) minimum for type text" in violations['document["id"]']
    assert '"minimum" must be a number' in violations['document["n"]']
    assert '"required" must be true or false' in violations['document["r"]']
    with pytest.raises(grpc.RpcError) as caught:
        imported({**document, "camera_id": {"type": "varchar", "pattern": "(x)\\1"}}, 2)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid RE2 regular expression" in b.field_violations(caught.value)[
        'document["camera_id"]']  # fmt: skip
