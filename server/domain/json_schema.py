"""Render a schema version as a JSON Schema (draft 2020-12) for one record's metadata.

The document accepts what the server's validator accepts, with these exceptions,
which JSON Schema cannot express: the 256 KiB record size limit; NaN and
infinities (JSON has neither); calendar checks of naive date-times (a pattern
cannot know that February has no 30th); and date-times that fall outside years
1..9999 once converted to UTC.

It describes one whole record (a new one, or a replace): `required` lists the keys
every record must hold, and those keys take no null. An update that merges into a
stored record may leave out a required key the record holds. A key's `pattern` is
exported as written: RE2 and ECMA-262 (JSON Schema's dialect) read the common
subset alike, but differ at the edges (see domain.patterns), and so do validators
that run it with another engine (Python's re, say, whose `$` also matches before a
final newline).
"""

from __future__ import annotations

from typing import Any

from .names import KEY_NAME_PATTERN, RESERVED_KEYFRAMES
from .schema import KeyDefinition, KeyType, SchemaVersion
from .values import FLOAT32_MAX, INT64_MAX

DRAFT = "https://json-schema.org/draft/2020-12/schema"
NAIVE_DATETIME_PATTERN = (
    r"^(?!.*\n)[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?$"
)
UUID4_PATTERN = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
_NO_NUL = r"^[^\u0000]*$"


def key_schema(definition: KeyDefinition) -> dict[str, Any]:
    """The JSON Schema of one active key's values: its type, constraints and description.

    A null value is a valid write of a key that is not required: it removes the key
    (merge mode). A required key takes no null, since a record without it is invalid.
    """
    nullable = not definition.required
    schema = _typed_schema(definition, nullable)
    constraints = definition.constraints
    if constraints.minimum is not None:
        schema["minimum"] = constraints.minimum
    if constraints.maximum is not None:
        schema["maximum"] = constraints.maximum
    if constraints.pattern is not None:
        # The key's pattern takes `pattern`; the NUL rule moves to a `not`.
        schema["pattern"] = constraints.pattern
        schema["not"] = {"type": "string", "pattern": "\\u0000"}
    if definition.description:
        schema["description"] = definition.description
    return schema


def _typed_schema(definition: KeyDefinition, nullable: bool) -> dict[str, Any]:
    def kinds(kind: str) -> str | list[str]:
        return [kind, "null"] if nullable else kind

    def or_null(schema: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [{"type": "null"}, schema]} if nullable else schema

    match definition.type:
        case KeyType.VARCHAR:
            return {"type": kinds("string"), "maxLength": definition.max_length,
                    "pattern": _NO_NUL}  # fmt: skip
        case KeyType.TEXT:
            return {"type": kinds("string"), "pattern": _NO_NUL}
        case KeyType.NUMBER:
            return {"type": kinds("number")}
        case KeyType.BOOLEAN:
            return {"type": kinds("boolean")}
        case KeyType.DATETIME:
            return {
                "anyOf": [
                    *([{"type": "null"}] if nullable else []),
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "pattern": NAIVE_DATETIME_PATTERN},
                ],
                "description": "ISO 8601 date-time; without an offset it means UTC",
            }
        case KeyType.UUID:
            return or_null({"type": "string", "format": "uuid", "pattern": UUID4_PATTERN})
        case KeyType.ENUM:
            return {"enum": [*definition.enum_options, *([None] if nullable else [])]}
        case KeyType.EMBEDDING:
            return or_null(
                {
                    "type": "array",
                    "items": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
                    "minItems": definition.embedding_size,
                    "maxItems": definition.embedding_size,
                }
            )
    raise AssertionError(definition.type)  # pragma: no cover


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"type": "null"}, schema]}


KEYFRAMES_SCHEMA: dict[str, Any] = _nullable(
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        "description": "frame numbers",
    }
)
UNKNOWN_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": ["number", "boolean", "null"]},
        {"type": "string", "pattern": _NO_NUL},
    ]
}


def export_json_schema(schema: SchemaVersion) -> dict[str, Any]:
    """A JSON Schema accepting exactly the metadata maps the server accepts for writes."""
    properties: dict[str, Any] = {RESERVED_KEYFRAMES: KEYFRAMES_SCHEMA}
    for definition in schema.state:
        # Deleted keys reject every value (`false`), as the server does.
        properties[definition.key] = key_schema(definition) if definition.active else False
    document: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"urn:metareg:schema:{schema.name}:{schema.version}",
        "title": f"{schema.name} v{schema.version}",
        "type": "object",
        "properties": properties,
        "propertyNames": {"pattern": KEY_NAME_PATTERN},
        "additionalProperties": UNKNOWN_VALUE_SCHEMA if schema.state.allow_unknown_keys else False,
    }
    required = [d.key for d in schema.state if d.required]
    if required:
        document["required"] = required
    return document
