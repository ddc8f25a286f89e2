"""Schema files: .json/.yaml/.yml, flat and full forms; errors name the file and entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metareg.client import Client, InvalidArgumentError, SchemaFileError, load_schema_file

FULL = {
    "camera_id": "string",
    "title": {"type": "varchar", "max_length": 64},
    "weather": {"type": "enum", "values": ["sunny", "rain"]},
    "clip": {"type": "embedding", "size": 8},
}
YAML = """\
camera_id: string      # the legacy flat form
title: {type: varchar, max_length: 64}
weather:
  type: enum
  values: [sunny, rain]
clip:
  type: embedding
  size: 8
"""


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_each_format_imports(client: Client, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"schema{suffix}"
    path.write_text(json.dumps(FULL) if suffix == ".json" else YAML)
    assert load_schema_file(path) == FULL
    update = client.import_schema_from_file("cams", path)
    assert (update.version, update.changed) == (1, True)
    assert client.schema("cams").to_dict() == {
        "camera_id": "varchar",
        "clip": {"type": "embedding", "size": 8},
        "title": {"type": "varchar", "max_length": 64},
        "weather": {"type": "enum", "values": ["sunny", "rain"]},
    }
    dry = client.import_schema_from_file("cams", path, dry_run=True)
    assert not dry.changed


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.yaml", "a: [unclosed", r"s\.yaml: invalid YAML at line 1"),
        ("s.json", '{"a": "text",}', r"s\.json: invalid JSON at line 1, column 14"),
        ("s.yaml", "a: text\na: number\n", r"s\.yaml: .*key 'a' is given twice"),
        ("s.json", '{"a": "text", "a": "number"}', r"s\.json: key 'a' is given twice"),
        ("s.yaml", "", r"s\.yaml: the file is empty"),
        ("s.yaml", "- a\n- b\n", r"s\.yaml: expected a mapping .* got a list"),
        ("s.yaml", "a: [text]\n", r's\.yaml: entry "a": expected a type name'),
        ("s.yaml", "1: text\n", r"s\.yaml: entry 1: key names must be strings"),
        ("s.yaml", "ok:\n  type: enum\n  values: [yes, no]\n", r's\.yaml: entry "ok": enum .*True'),
        ("s.toml", "a = 1", r"s\.toml: unsupported file type '\.toml'"),
        ("s.yaml", "? [a, b]\n: text\n", r"s\.yaml: invalid YAML .*a key must be a name"),
        ("s.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", r"s\.json: JSON nested too"),
    ],
)
def test_file_errors_name_the_file_and_entry(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SchemaFileError, match=message):
        load_schema_file(path)


def test_server_rejections_name_the_file_and_entry(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("good: text\nbad: strnig\n")
    with pytest.raises(InvalidArgumentError) as caught:
        client.import_schema_from_file("cams", path)
    assert str(caught.value).startswith(f"INVALID_ARGUMENT: {path}: ")
    assert [v.field for v in caught.value.violations] == ['document["bad"]']
    assert "unknown type" in caught.value.violations[0].description
    assert client.schema("cams").version == 0


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaFileError, match=r"nope\.yaml: cannot read the file"):
        load_schema_file(tmp_path / "nope.yaml")
