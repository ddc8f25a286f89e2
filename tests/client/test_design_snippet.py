"""The DESIGN.md §4 snippet, line by line, against a real server, asserting each result."""

from __future__ import annotations

from pathlib import Path

import pytest

from metareg.client import Client, Outcome, SchemaUpdate

from ..conftest import RunningServer

SCHEMA_YAML = """\
camera_id: varchar
clip:
  type: embedding
  size: 512
weather:
  type: enum
  values: [sunny, rain, snow]
"""


def test_design_snippet(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("schema.yaml").write_text(SCHEMA_YAML)
    monkeypatch.setenv("METAREG_ADDRESS", server.address)
    with Client.from_env() as client:
        # The snippet deletes and restores "old", so it must exist first.
        assert client.schema("cams").version == 0
        client.import_schema_from_dict("cams", {"old": "text"})

    with Client(server.address) as client:
        schema = client.schema("cams")
        assert schema.version == 1
        schema.add_scalar("camera_id", data_type="varchar")
        schema.add_scalar("score", data_type="number")
        schema.set_scalar("score", data_type="text")
        schema.add_enum("weather", values=["sunny", "rain"])
        schema.add_enum_options("weather", values=["snow"])
        schema.add_embedding("clip", size=512)
        schema.delete_key("old", hard=False)
        schema.restore_key("old")
        assert schema.save() == 2
        listing = str(schema)
        assert listing.splitlines()[0] == 'schema "cams" version 2'
        assert [line.split()[0] for line in listing.splitlines()[1:]] == [
            "camera_id", "clip", "old", "score", "weather"]  # fmt: skip
        assert "unsaved" not in listing
        assert schema.get_key_type("score") == "text"
        assert schema.get_enum_options("weather") == ["sunny", "rain", "snow"]
        assert schema.get_embedding_size("clip") == 512
        assert schema.version == 2
        assert [v.version for v in schema.history()] == [2, 1]
        assert "set_scalar score number -> text" in schema.history()[0].changes
        assert schema.to_dict() == {
            "camera_id": "varchar",
            "clip": {"type": "embedding", "size": 512},
            "old": "text",
            "score": "text",
            "weather": {"type": "enum", "values": ["sunny", "rain", "snow"]},
        }
        json_schema = schema.to_json_schema()
        assert json_schema["title"] == "cams v2"
        assert set(json_schema["properties"]) == {*schema.keys(), "keyframes"}

        imported = client.import_schema_from_dict(
            "cams", {"camera_id": "varchar", "clip": {"type": "embedding", "size": 512}}
        )
        assert isinstance(imported, SchemaUpdate)
        assert imported.version == 3
        assert sorted(imported.applied_changes) == [
            "delete_key old (soft)",
            "delete_key score (soft)",
            "delete_key weather (soft)",
        ]
        from_file = client.import_schema_from_file("cams", "schema.yaml")
        assert from_file.version == 4
        assert client.schema("cams").keys() == ["camera_id", "clip", "weather"]

        report = client.validate("cams", {"unit-1": {"camera_id": "cam001"}})
        assert report.ok
        assert (report.valid_count, report.invalid_count, report.schema_version) == (1, 0, 4)
        with client.bundle("cams") as bundle:
            bundle.update("unit-1", {"camera_id": "cam001"}, mode="merge")
        assert [(r.data_unit_id, r.outcome, r.revision) for r in bundle.results] == [
            ("unit-1", Outcome.APPLIED, 1)]  # fmt: skip
        assert client.get_metadata("cams", ["unit-1"]) == {"unit-1": {"camera_id": "cam001"}}
