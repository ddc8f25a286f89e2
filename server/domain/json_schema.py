"""Render a schema version as a JSON Schema (draft 2020-12) for one record's metadata.

The document accepts what the server's validator accepts, with these exceptions,
which JSON Schema cannot express: the 256 KiB record size limit; NaN and
infinities (JSON has neither); calendar checks of naive date-times (a pattern
cannot know that February has no 30th); and date-times that fall outside years
1..9999 once converted to UTC.
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


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    # A null value is a valid write: it removes the key (merge mode).
    return {"anyOf": [{"type": "null"}, schema]}


def key_schema(definition: KeyDefinition) -> dict[str, Any]:
    """The JSON Schema of one active key's values."""
    match definition.type:
        case KeyType.VARCHAR:
            return {
                "type": ["string", "null"],
                "maxLength": definition.max_length,
                "pattern": _NO_NUL,
            }
        case KeyType.TEXT:
            return {"type": ["string", "null"], "pattern": _NO_NUL}
        case KeyType.NUMBER:
            return {"type": ["number", "null"]}
        case KeyType.BOOLEAN:
            return {"type": ["boolean", "null"]}
        case KeyType.DATETIME:
            return {
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "pattern": NAIVE_DATETIME_PATTERN},
                ],
                "description": "ISO 8601 date-time; without an offset it means UTC",
            }
        case KeyType.UUID:
            return _nullable({"type": "string", "format": "uuid", "pattern": UUID4_PATTERN})
        case KeyType.ENUM:
            return {"enum": [*definition.enum_options, None]}
        case KeyType.EMBEDDING:
            return _nullable(
                {
                    "type": "array",
                    "items": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
                    "minItems": definition.embedding_size,
                    "maxItems": definition.embedding_size,
                }
            )
    raise AssertionError(definition.type)  # pragma: no cover


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
    return {
        "$schema": DRAFT,
        "$id": f"urn:metareg:schema:{schema.name}:{schema.version}",
        "title": f"{schema.name} v{schema.version}",
        "type": "object",
        "properties": properties,
        "propertyNames": {"pattern": KEY_NAME_PATTERN},
        "additionalProperties": UNKNOWN_VALUE_SCHEMA if schema.state.allow_unknown_keys else False,
    }
