"""Offline checks of one record against an exported JSON Schema (jsonschema + formats).

The server stays the authority: JSON Schema cannot express the record size limit or
non-finite floats, so a record that passes here can still be rejected there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import (  # type: ignore[import-untyped,unused-ignore]
    Draft202012Validator,
    FormatChecker,
)
from jsonschema.exceptions import best_match  # type: ignore[import-untyped,unused-ignore]

from ._errors import ValueConversionError
from ._results import Violation
from ._values import flatten, json_ready


def _violation(key: str, rule: str, value: object, message: str) -> Violation:
    field = f"metadata[{json.dumps(key)}]" if key else "metadata"
    return Violation(field, 0, "", key, rule, repr(value)[:60], f"{field}: {message[:300]}")


class OfflineValidator:
    """A compiled JSON Schema that reports violations in the server's shape."""

    def __init__(self, json_schema: Mapping[str, Any]) -> None:
        self._declared = set(json_schema.get("properties", {}))
        self._validator = Draft202012Validator(json_schema, format_checker=FormatChecker())

    def validate(
        self, record: Mapping[str, object], *, flatten_nested: bool = False
    ) -> list[Violation]:
        document: dict[str, Any] = {}
        violations: list[Violation] = []
        for key, value in (flatten(record) if flatten_nested else record).items():
            try:
                document.update(json_ready({key: value}))
            except ValueConversionError as error:
                violations.append(_violation(key, "value", value, error.message))
        errors = sorted(self._validator.iter_errors(document), key=lambda e: list(e.path))
        for found in errors:
            violations += self._explain(found, document)
        return violations

    def _explain(self, error: Any, document: Mapping[str, Any]) -> list[Violation]:
        if not error.path and error.validator == "additionalProperties":
            return [
                _violation(key, "unknown_key", document[key], f"key {key!r} is not declared")
                for key in sorted(set(document) - self._declared)
            ]
        key = str(error.path[0]) if error.path else ""
        # anyOf (nullable types) hides the useful reason in its context: prefer a branch
        # of the right JSON type that failed on something more specific.
        specific = [c for c in error.context if c.validator != "type"] or error.context
        cause = best_match(specific) if specific else error
        # A deleted key's schema is `false`, which has no validator keyword.
        rule = str(cause.validator) if cause.validator else "deleted_key"
        return [_violation(key, rule, document.get(key), cause.message)]
