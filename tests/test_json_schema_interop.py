"""The exported JSON Schema works with `jsonschema`: one valid and one invalid value per type
and per constraint (tests/test_validator_agreement.py checks agreement with hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer

CASES: dict[str, tuple[Any, Any]] = {
    "v": ("cam001", "x" * 9),
    "t": ("long text " * 100, 12),
    "n": (95.5, True),
    "flag": (False, "false"),
    "at": ("2024-05-01T12:30:00+02:00", "2024-02-30T00:00:00Z"),
    "naive": ("2024-05-01T12:30:00", "yesterday"),
    "id": ("0b5d2f7e-3c1a-4e9b-8f6d-2a7c9e1b4d30", "0b5d2f7e-3c1a-1e9b-8f6d-2a7c9e1b4d30"),
    "w": ("rain", "snow"),
    "clip": ([0.1, 0.2, 0.3], [0.1, 0.2]),
    "keyframes": ([0, 5, 10], [-1]),
    "q": (0, 1.0000000000000002),
    "q_top": (1, 2),
    "cam": ("cam001", "cam01"),
    "blurb": ("a blurry frame", "sharp"),
    "seen": (True, None),
}
# Every record must hold the required key "seen".
BASE = {"seen": True}


@pytest.fixture
def validator(server: RunningServer) -> Draft202012Validator:
    b.update_schema(
        server.registry, "cams", 0,
        b.add_scalar("v", "varchar", max_length=8), b.add_scalar("t", "text"),
        b.add_scalar("n", "number"), b.add_scalar("flag", "boolean"),
        b.add_scalar("at", "datetime"), b.add_scalar("naive", "datetime"),
        b.add_scalar("id", "uuid"), b.add_enum("w", ["sunny", "rain"]),
        b.add_embedding("clip", 3), b.add_scalar("gone", "text"),
        b.add_constrained("q", "number", minimum=0, maximum=1),
        b.add_constrained("q_top", "number", "at most 1", maximum=1),
        b.add_constrained("cam", "varchar", max_length=8, pattern="^cam[0-9]{3}$"),
        b.add_constrained("blurb", "text", pattern="blur"),
        b.add_constrained("seen", "boolean", required=True),
    )  # fmt: skip
    b.update_schema(server.registry, "cams", 1, b.delete_key("gone"))
    exported = server.registry.ExportJsonSchema(rpb.ExportJsonSchemaRequest(name="cams"))
    document = json.loads(exported.json_schema)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=FormatChecker())


def test_date_time_format_is_really_checked() -> None:
    # jsonschema skips date-time unless rfc3339-validator is installed.
    assert "date-time" in FormatChecker().checkers


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_type_accepts_valid_and_rejects_invalid(
    validator: Draft202012Validator, key: str
) -> None:
    good, bad = CASES[key]
    assert validator.is_valid({**BASE, key: good})
    assert not validator.is_valid({**BASE, key: bad})


def test_record_level_rules(validator: Draft202012Validator) -> None:
    full = {key: good for key, (good, _) in CASES.items()}
    assert validator.is_valid(full)
    assert validator.is_valid({**BASE, "n": None})  # null removes a key in merge mode
    assert not validator.is_valid({**BASE, "undeclared": 1})
    assert not validator.is_valid({**BASE, "gone": "soft-deleted keys take no writes"})
    errors = list(validator.iter_errors({**BASE, "n": "x", "w": "fog"}))
    assert {e.path[0] for e in errors} == {"n", "w"}
    assert [e.validator for e in validator.iter_errors({"n": 1.0})] == ["required"]
    assert validator.schema["properties"]["q_top"]["description"] == "at most 1"
