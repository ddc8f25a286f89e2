"""Constraints and descriptions in the Python client and the CLI: MetadataSchema's
arguments and getters, print(schema), to_dict() round trips, schema files in the full
form, violations and impacts as the client reports them, and `schema add-key`/`show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metareg.client import (
    BundleError,
    Client,
    FailedPreconditionError,
    InvalidArgumentError,
    SchemaEditError,
)

from ..conftest import RunningServer
from .test_cli import metareg

SCHEMA_FILE = """\
quality_score: {type: number, minimum: 0, maximum: 1, description: share of sharp pixels}
camera_id: {type: varchar, max_length: 16, pattern: "^cam[0-9]{3}$", indexed: true}
captured_at: {type: datetime, required: true}
weather: {type: enum, values: [sunny, rain], required: true, description: "sky,\\nas seen"}
clip: {type: embedding, size: 2, description: CLIP ViT-B/32}
"""


@pytest.fixture
def cams(client: Client) -> Client:
    schema = client.schema("cams")
    schema.add_scalar("quality_score", "number", minimum=0, maximum=1,
                      description="share of sharp pixels")  # fmt: skip
    schema.add_scalar("camera_id", "varchar", max_length=16, pattern="^cam[0-9]{3}$",
                      indexed=True)  # fmt: skip
    schema.add_scalar("captured_at", "datetime", required=True)
    schema.add_enum("weather", ["sunny", "rain"], required=True, description="sky,\nas seen")
    schema.add_embedding("clip", 2, description="CLIP ViT-B/32")
    schema.save()
    return client


def test_arguments_and_getters(cams: Client) -> None:
    schema = cams.schema("cams")
    assert (schema.get_minimum("quality_score"), schema.get_maximum("quality_score")) == (0, 1)
    assert schema.get_minimum("camera_id") is None
    assert schema.get_pattern("camera_id") == "^cam[0-9]{3}$"
    assert schema.get_pattern("quality_score") is None
    assert schema.is_required("captured_at")
    assert schema.is_required("weather")
    assert not schema.is_required("clip")
    assert schema.get_constraints("quality_score") == {"minimum": 0.0, "maximum": 1.0}
    assert schema.get_constraints("clip") == {}
    assert schema.get_description("clip") == "CLIP ViT-B/32"
    assert schema.get_description("captured_at") == ""
    assert schema.key_info("quality_score") == {
        "type": "number", "minimum": 0.0, "maximum": 1.0,
        "description": "share of sharp pixels", "state": "active"}  # fmt: skip


def test_print_shows_constraints_and_descriptions(cams: Client) -> None:
    assert str(cams.schema("cams")).splitlines() == [
        'schema "cams" version 1',
        "  camera_id      varchar(16)  pattern ^cam[0-9]{3}$  [indexed]",
        "  captured_at    datetime  required",
        "  clip           embedding(2)",
        "                   CLIP ViT-B/32",
        "  quality_score  number  minimum 0, maximum 1",
        "                   share of sharp pixels",
        "  weather        enum(sunny, rain)  required",
        "                   sky,",
        "                   as seen",
    ]


def test_to_dict_round_trips_through_an_import(cams: Client, tmp_path: Path) -> None:
    document = cams.schema("cams").to_dict()
    assert document["quality_score"] == {"type": "number", "minimum": 0.0, "maximum": 1.0,
                                         "description": "share of sharp pixels"}  # fmt: skip
    assert document["captured_at"] == {"type": "datetime", "required": True}
    assert not cams.import_schema_from_dict("cams", document).changed
    copy = cams.import_schema_from_dict("copy", document)
    assert copy.changed
    assert cams.schema("copy").to_dict() == document
    (tmp_path / "schema.yaml").write_text(SCHEMA_FILE)
    assert not cams.import_schema_from_file("cams", tmp_path / "schema.yaml").changed


def test_edits_checked_on_their_face_and_by_the_server(cams: Client) -> None:
    schema = cams.schema("cams")
    with pytest.raises(SchemaEditError, match="minimum must be a number"):
        schema.add_scalar("n", "number", minimum="0")  # type: ignore[arg-type]
    with pytest.raises(SchemaEditError, match="required must be True or False"):
        schema.add_scalar("n", "number", required="yes")  # type: ignore[arg-type]
    with pytest.raises(SchemaEditError, match="description must be a string"):
        schema.set_description("clip", None)  # type: ignore[arg-type]
    schema.add_scalar("bad", "text", pattern="(a)\\1")
    with pytest.raises(InvalidArgumentError) as caught:
        schema.save()
    assert 'key "bad"' in str(caught.value)
    assert "not a valid RE2 regular expression" in str(caught.value)
    schema.discard_changes()
    schema.set_description("clip", "")
    schema.set_constraints("quality_score", maximum=2)
    assert schema.pending_changes == [
        "set_description(key='clip')",
        "set_constraints(key='quality_score', constraints={maximum: 2.0})",
    ]
    assert schema.save() == 2
    assert schema.get_description("clip") == ""
    assert schema.get_constraints("quality_score") == {"maximum": 2.0}


def test_violations_and_impact_as_the_client_reports_them(cams: Client) -> None:
    report = cams.validate("cams", {"u1": {"quality_score": 1.5, "camera_id": "cam1"}})
    assert sorted((v.key, v.rule) for v in report.violations) == [
        ("camera_id", "pattern"), ("captured_at", "required"), ("quality_score", "maximum"),
        ("weather", "required")]  # fmt: skip
    with pytest.raises(BundleError) as caught, cams.bundle("cams") as bundle:
        bundle.update("u1", {"quality_score": -1, "captured_at": "2024-05-01T00:00:00Z",
                             "weather": "rain"})  # fmt: skip
    assert [v.rule for r in caught.value.results for v in r.violations] == ["minimum"]
    cams.apply("cams", {"u1": {"captured_at": "2024-05-01T00:00:00Z", "weather": "rain"},
                        "u2": {"captured_at": "2024-05-01T00:00:00Z", "weather": "sunny",
                               "quality_score": 0.25}})  # fmt: skip
    schema = cams.schema("cams")
    schema.set_constraints("quality_score", minimum=0.5, required=True)
    changes, impact = schema.preview()
    assert changes == ["set_constraints quality_score [minimum 0.5, required]"]
    assert impact.invalid_records == 2
    assert impact.invalid_records_by_key == {"quality_score": 1}
    assert impact.missing_records_by_key == {"quality_score": 2}
    assert "  quality_score: 2 record(s) lack it (required)" in impact.describe()
    with pytest.raises(FailedPreconditionError) as refused:
        schema.save()
    assert refused.value.impact is not None
    assert refused.value.impact.missing_records_by_key == {"quality_score": 2}
    schema.save(force=True)
    assert cams.get_metadata("cams", ["u2"])["u2"] == {
        "captured_at": "2024-05-01T00:00:00.000000Z", "weather": "sunny"}  # fmt: skip


def test_cli_add_key_and_show(server: RunningServer, tmp_path: Path) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        done = metareg(server, "schema", *args, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("add-key", "cams", "score", "number", "--minimum", "0", "--maximum",
                         "1", "--required", "--description", "how sharp")  # fmt: skip
    assert code == 0, err
    assert out == (
        "cams: version 1 (add_scalar(key='score', type='number', constraints="
        "{minimum: 0.0 maximum: 1.0 required: true}, description='how sharp'))\n"
    )
    code, out, err = run("add-key", "cams", "camera_id", "varchar", "--pattern", "^cam")
    assert code == 0, err
    code, out, err = run("add-key", "cams", "flag", "boolean", "--pattern", "x")
    assert (code, "--pattern does not apply to a boolean key" in err) == (2, True)
    code, out, err = run("add-key", "cams", "text", "text", "--minimum", "1")
    assert (code, "--minimum does not apply to a text key" in err) == (2, True)
    code, out, err = run("show", "cams")
    assert out.splitlines() == [
        'schema "cams" version 2',
        "  camera_id  varchar(8192)  pattern ^cam",
        "  score      number  minimum 0, maximum 1, required",
        "               how sharp",
    ]
    code, out, err = run("show", "cams", "--json")
    assert json.loads(out)["keys"]["score"] == {
        "type": "number", "minimum": 0.0, "maximum": 1.0, "required": True,
        "description": "how sharp", "state": "active"}  # fmt: skip
    code, out, err = run("export", "cams", "--format", "json-schema")
    exported = json.loads(out)
    assert exported["required"] == ["score"]
    assert exported["properties"]["score"]["description"] == "how sharp"
