"""Client.validate, apply, get_metadata and delete_metadata against a real server."""

from __future__ import annotations

from array import array

import pytest

from metareg.client import Client, Outcome

from .conftest import CallRecorder, sent_updates


@pytest.fixture
def cams(client: Client) -> Client:
    client.import_schema_from_dict(
        "cams",
        {"camera_id": "varchar", "score": "number", "night": "boolean",
         "capture.temp": "number", "clip": {"type": "embedding", "size": 4}},
    )  # fmt: skip
    return client


def test_validate_reports_every_violation_and_writes_nothing(cams: Client) -> None:
    report = cams.validate(
        "cams",
        {
            "u1": {"camera_id": "cam001", "score": 0.5},
            "u2": {"camera_id": 7, "score": True, "clip": [1.0]},
            "u3": {"bogus": "x"},
        },
    )
    assert not report.ok
    assert (report.valid_count, report.invalid_count) == (1, 2)
    assert [(r.index, r.data_unit_id) for r in report.invalid_records] == [(1, "u2"), (2, "u3")]
    rules = {(v.data_unit_id, v.key, v.rule) for v in report.violations}
    assert rules == {
        ("u2", "camera_id", "type"), ("u2", "score", "type"),
        ("u2", "clip", "embedding_size"), ("u3", "bogus", "unknown_key"),
    }  # fmt: skip
    assert report.violations[0].field.startswith("records[1].metadata[")
    assert "2 invalid record(s)" in str(report)
    assert cams.get_metadata("cams", ["u1", "u2", "u3"]) == {}


def test_validate_accepts_lists_and_pages_by_1000(cams: Client, recorder: CallRecorder) -> None:
    records = [{"data_unit_id": f"u{i}", "metadata": {"score": i}} for i in range(2300)]
    records[1500]["metadata"] = {"score": "x"}
    records.append(("pair", {"score": 1}))  # type: ignore[arg-type]
    report = cams.validate("cams", records)
    sent = [sent_updates(r) for r in recorder.requests("ValidateMetadata")]
    assert [len(records) for records in sent] == [1000, 1000, 301]
    assert (report.valid_count, report.invalid_count) == (2300, 1)
    [bad] = report.invalid_records
    assert (bad.index, bad.data_unit_id) == (1500, "u1500")
    assert bad.violations[0].index == 1500
    assert bad.violations[0].field == 'records[1500].metadata["score"]'
    assert bad.violations[0].description.startswith('record 1500 (data_unit_id "u1500")')


def test_values_without_a_representation_are_violations_in_a_report(cams: Client) -> None:
    report = cams.validate("cams", {"u1": {"score": 1}, "u2": {"clip": ["a"]}, "u3": {"score": 2}})
    assert (report.valid_count, report.invalid_count) == (2, 1)
    [bad] = report.invalid_records
    assert (bad.index, bad.violations[0].key, bad.violations[0].rule) == (1, "clip", "value")


def test_coerce_strings_and_flatten_nested(cams: Client) -> None:
    raw = {"u1": {"score": "95", "night": "true", "capture": {"temp": "21.5"}}}
    assert not cams.validate("cams", raw, flatten_nested=True).ok
    assert cams.validate("cams", raw, flatten_nested=True, coerce_strings=True).ok
    with pytest.raises(TypeError, match="nested object"):
        cams.apply("cams", raw, coerce_strings=True)
    results = cams.apply("cams", raw, coerce_strings=True, flatten_nested=True)
    assert [r.outcome for r in results] == [Outcome.APPLIED]
    assert cams.get_metadata("cams", ["u1"]) == {
        "u1": {"score": 95.0, "night": True, "capture.temp": 21.5}
    }


def test_embeddings_and_keyframes_round_trip(cams: Client) -> None:
    cams.apply(
        "cams",
        {
            "u1": {"clip": [0.5, -1.0, 2.0, 0.25], "keyframes": [0, 10, 20]},
            "u2": {"clip": array("f", [1, 2, 3, 4])},
        },
    )
    assert cams.get_metadata("cams", ["u1", "u2"]) == {
        "u1": {"clip": [0.5, -1.0, 2.0, 0.25], "keyframes": [0, 10, 20]},
        "u2": {"clip": [1.0, 2.0, 3.0, 4.0]},
    }


def test_get_and_delete_any_number_of_ids(cams: Client, recorder: CallRecorder) -> None:
    cams.apply("cams", {f"u{i}": {"score": i} for i in range(1500)})
    ids = [f"u{i}" for i in range(1600)]
    found = cams.get_metadata("cams", ids)
    assert [len(r.data_unit_ids) for r in recorder.requests("GetMetadata")] == [1000, 600]
    assert len(found) == 1500
    assert found["u1499"] == {"score": 1499.0}
    assert cams.delete_metadata("cams", ids) == 1500
    assert cams.get_metadata("cams", ids) == {}
