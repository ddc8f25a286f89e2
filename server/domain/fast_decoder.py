"""The compiled fast path: decode and validate the JSON record form in one msgspec pass.

For each schema version a msgspec type is generated whose fields are the active keys
with their types and limits: varchar lengths, enum options as literals, embeddings of
exactly `size` numbers (or their base64), keyframes as non-negative int64s, and a
data_unit_id of 1-256 characters. msgspec's C decoder checks all of that while it
parses. What it cannot express is checked afterwards by
the full validator's own checkers: date-times (grammar, and normalised to UTC, with
fractions past microseconds cut), UUIDs (version 4, hyphenated, lower-cased) and
embeddings (float32, finite), and control characters in ids. NUL characters in values
are caught by one scan of the raw bytes.

Anything else - an unknown or deleted key, a wrong type, a bad value, coerce_strings,
a schema that allows unknown keys - makes the fast path decline (`decode` returns
None). The caller then runs the generic decoder and the full validator, which list
every violation. So the fast path accepts only what the full validator accepts, with
the same values (tests/test_fast_decoder.py checks both with hypothesis).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .bundle import MetadataUpdate
from .json_records import MAX_RECORDS, MODES
from .names import CONTROL_CHARACTER, MAX_DATA_UNIT_ID_LENGTH, RESERVED_KEYFRAMES
from .schema import KeyDefinition, KeyType, SchemaState
from .values import (
    INT64_MAX,
    ValueViolation,
    check_datetime,
    check_uuid,
    float32_vector,
    value_checker,
)

# A NUL can only reach a decoded string through this escape (JSON forbids raw control
# characters in strings). An escaped backslash before "u0000" matches too: harmless,
# the fast path just declines.
_NUL_ESCAPE = b"\\u0000"

# A JSON number msgspec decodes as -0.0 is written with "-0" (-0.0, -0e3, -0.000…1e-400)
# or underflows through a negative exponent (-1e-400). The full validator stores -0.0
# as 0.0; without these bytes no number field can hold -0.0, and the fast path skips
# that normalisation.
_NEGATIVE_ZERO_SIGNS = (b"-0", b"e-", b"E-")

# Control characters in ids are checked after decoding: msgspec's `pattern` calls back
# into Python's re for every record, which cost a quarter of the decoding.
_DataUnitId = Annotated[str, Meta(min_length=1, max_length=MAX_DATA_UNIT_ID_LENGTH)]
_Keyframes = list[Annotated[int, Meta(ge=0, le=INT64_MAX)]]
_Mode = Union[Literal["merge", "replace", "keep_existing"], None]  # noqa: UP007

PostCheck = Callable[[Any], object]


class FastDecoder:
    """Decodes a JSON record form of one schema version, or declines."""

    def __init__(self, state: SchemaState) -> None:
        fields: list[tuple[str, Any, Any]] = [("keyframes", _optional(_Keyframes), UNSET)]
        rename = {"keyframes": RESERVED_KEYFRAMES}
        post: list[tuple[str, PostCheck]] = []
        numbers: list[str] = []
        for number, definition in enumerate(d for d in state if d.active):
            name = f"k{number}"
            value_type, check = _field_type(definition)
            fields.append((name, _optional(value_type), UNSET))
            rename[name] = definition.key
            if check is not None:
                post.append((definition.key, check))
            if definition.type is KeyType.NUMBER:
                numbers.append(definition.key)
        # gc=False: these structs hold only strings, numbers and lists of them, so they
        # can form no cycles, and untracked ones decode about a third faster.
        metadata = msgspec.defstruct(
            "Metadata", fields, rename=rename, forbid_unknown_fields=True, gc=False
        )
        record = msgspec.defstruct(
            "Record",
            [
                ("data_unit_id", _DataUnitId),
                ("metadata", metadata, msgspec.field(default_factory=metadata)),
                ("mode", _Mode, None),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        records = Annotated[list[record], Meta(max_length=MAX_RECORDS)]  # type: ignore[valid-type]
        self._decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(records)
        self._post = tuple(post)
        self._numbers = tuple(numbers)

    @classmethod
    def compile(cls, state: SchemaState) -> FastDecoder | None:
        """The decoder of a schema version; None when its records may hold undeclared
        keys (a generated type would drop them instead of checking them)."""
        return None if state.allow_unknown_keys else cls(state)

    def decode(self, raw: bytes) -> list[MetadataUpdate] | None:
        """Checked updates with normalised values, or None to leave `raw` to the full path."""
        if _NUL_ESCAPE in raw:
            return None
        try:
            records = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
        to_builtins, post, modes = msgspec.to_builtins, self._post, MODES
        numbers = self._numbers if self._numbers and _may_hold_negative_zero(raw) else ()
        updates: list[MetadataUpdate] = []
        append = updates.append
        try:
            for record in records:
                duid = record.data_unit_id
                # isprintable() is false for every control character (and for some
                # other characters, which the exact check then lets through).
                if not duid.isprintable() and CONTROL_CHARACTER.search(duid):
                    return None
                # Keys in schema order, not the request's (the generic path keeps that):
                # equal records either way, and the stored JSON is never compared as text.
                values = to_builtins(record.metadata, builtin_types=(bytes,))
                for key, check in post:
                    value = values.get(key)
                    if value is not None:
                        values[key] = check(value)
                for key in numbers:
                    if values.get(key) == 0.0:  # -0.0 too, which check_number stores as 0.0
                        values[key] = 0.0
                append(MetadataUpdate(duid, values, modes[record.mode], (), True))
        except ValueViolation:
            return None
        return updates


def _may_hold_negative_zero(raw: bytes) -> bool:
    return any(sign in raw for sign in _NEGATIVE_ZERO_SIGNS)


def _optional(value_type: Any) -> Any:
    return Union[value_type, None, UnsetType]  # noqa: UP007


def _field_type(definition: KeyDefinition) -> tuple[Any, PostCheck | None]:
    """The msgspec type of one active key's values, and the check msgspec leaves over."""
    # A pattern is RE2's, which msgspec (Python's re) cannot run: the full checker does.
    pattern_check = value_checker(definition) if definition.constraints.pattern else None
    match definition.type:
        case KeyType.VARCHAR:
            return Annotated[str, Meta(max_length=definition.max_length)], pattern_check
        case KeyType.TEXT:
            return str, pattern_check
        case KeyType.NUMBER:
            # Integers become floats; out-of-range numbers fail. Bounds are inclusive, as
            # the full checker's; an integer within them stays within once rounded.
            low, high = definition.constraints.minimum, definition.constraints.maximum
            return Annotated[float, Meta(ge=low, le=high)], None
        case KeyType.BOOLEAN:
            return bool, None
        case KeyType.DATETIME:
            return str, check_datetime
        case KeyType.UUID:
            return str, check_uuid
        case KeyType.ENUM:
            return Literal[definition.enum_options], None
        case KeyType.EMBEDDING:
            size = definition.embedding_size
            assert size is not None
            numbers = Annotated[list[float], Meta(min_length=size, max_length=size)]
            base64 = Annotated[bytes, Meta(min_length=4 * size, max_length=4 * size)]
            return Union[numbers, base64], _embedding_check(definition)  # noqa: UP007
    raise AssertionError(definition.type)  # pragma: no cover


def _embedding_check(definition: KeyDefinition) -> PostCheck:
    check = value_checker(definition)  # size (already right) and finiteness

    def embedding(value: list[float] | bytes) -> object:
        # Doubles past float32 become inf in array("f"): not finite, so refused.
        return check(float32_vector(value) if type(value) is bytes else array("f", value))

    return embedding
