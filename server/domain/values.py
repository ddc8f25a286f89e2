"""Per-type value checks: each returns the normalised value or raises ValueViolation.

Decoded values are plain Python objects: str, float (int is accepted too), bool,
None (null), `array('f')` for an embedding and `list[int]` for keyframes.
"""

from __future__ import annotations

import math
import re
import sys
from array import array
from collections.abc import Callable
from datetime import UTC, datetime

from .names import shorten
from .patterns import compile_pattern
from .schema import KeyConstraints, KeyDefinition, KeyType, format_bound

Checker = Callable[[object], object]

FLOAT32_MAX = 3.4028234663852886e38
INT64_MAX = 2**63 - 1


class ValueViolation(Exception):
    """A value breaks a type rule. `rule` is machine-readable; str() is a sentence."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def describe_kind(value: object) -> str:
    """A short description of a decoded value's kind, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, array):
        return f"a float list of {len(value)}"
    if isinstance(value, list):
        return f"an int list of {len(value)}"
    return type(value).__name__


def display(value: object) -> str:
    """The offending value, shortened for messages."""
    if isinstance(value, array | list) and len(value) > 4:
        return "[" + ", ".join(map(_item, value[:3])) + f", … ({len(value)} items)]"
    if isinstance(value, array):
        return "[" + ", ".join(map(_item, value)) + "]"
    return shorten(value)


def _item(number: object) -> str:
    # A JSON list can hold an integer of thousands of digits, which :g cannot format.
    return f"{number:g}" if type(number) is float else shorten(number, 24)


_LITTLE_ENDIAN = sys.byteorder == "little"


def float32_vector(raw: bytes) -> array[float]:
    """An embedding from its little-endian float32 bytes (the wire and storage form)."""
    vector = array("f")
    vector.frombytes(raw)
    if not _LITTLE_ENDIAN:  # pragma: no cover - the wire order is little-endian
        vector.byteswap()
    return vector


def _wrong_kind(expected: str, value: object) -> ValueViolation:
    return ValueViolation(
        "type", f"expected {expected}, got {describe_kind(value)} {display(value)}"
    )


def _string_checker(max_length: int | None, type_name: str) -> Checker:
    def check(value: object) -> object:
        if type(value) is not str:
            raise _wrong_kind(f"a {type_name} string", value)
        if max_length is not None and len(value) > max_length:
            raise ValueViolation(
                "max_length",
                f"{display(value)} is {len(value)} characters long; the limit is {max_length}",
            )
        if "\x00" in value:
            raise ValueViolation("nul_character", f"{display(value)} contains a NUL character")
        return value

    return check


def check_number(value: object) -> object:
    kind = type(value)
    if kind is float:
        if value - value == 0.0:  # type: ignore[operator]  # false for nan and ±inf
            # -0.0 is stored as 0.0: PostgreSQL's JSON numbers have no negative zero,
            # so keeping the sign on SQLite alone would make the backends disagree.
            return value if value else 0.0
        raise ValueViolation("finite", f"{value!r} is not a finite number")
    if kind is int:
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise ValueViolation("finite", f"{display(value)} is too large for a double") from None
    raise _wrong_kind("a number", value)


def check_boolean(value: object) -> object:
    if type(value) is bool:
        return value
    raise _wrong_kind("a boolean", value)


_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 date-time whose offset is optional (naive means UTC)."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError("not an ISO 8601 date-time like 2024-05-01T12:30:00Z")
    zulu, sign, off_h, off_m = match.groups()[7:]
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"offset {sign}{off_h}:{off_m} is out of range")
    elif zulu != "Z":  # naive (UTC), or a lower-case z that fromisoformat refuses
        text = (text[:-1] if zulu else text) + "Z"
    # The grammar is checked; the C parser does the rest (calendar, ranges; digits
    # past the microsecond are dropped).
    return datetime.fromisoformat(text).astimezone(UTC)


def format_datetime(moment: datetime) -> str:
    """The stored form: UTC, fixed width, microseconds, so text order is time order."""
    # Positional arguments: isoformat parses keywords slowly, and this runs per value.
    text = moment.astimezone(UTC).isoformat("T", "microseconds")
    return text[:-6] + "Z"  # "+00:00" -> "Z"


# The common shapes whose stored form is the text itself, rearranged: UTC (Z) or naive
# (which means UTC), with at most microseconds kept. Offsets need arithmetic.
_UTC_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?[Zz]?"
)


def _utc_datetime_text(text: str) -> str | None:
    """The stored form of a UTC or naive date-time by slicing, None for other shapes.

    Four times cheaper than parsing and formatting; the general path gives the same
    text for these shapes, and says why the others are invalid
    (tests/domain/test_datetimes.py checks both).
    """
    match = _UTC_DATETIME.fullmatch(text)
    if match is None:
        return None
    day, clock, fraction = match.groups()
    stamp = day + "T" + clock
    try:
        datetime.fromisoformat(stamp)  # calendar and clock ranges
    except ValueError:
        return None  # the general path says why
    return stamp + "." + (fraction[:6].ljust(6, "0") if fraction else "000000") + "Z"


def check_datetime(value: object) -> object:
    if type(value) is not str:
        raise _wrong_kind("an ISO 8601 date-time string", value)
    try:
        return _utc_datetime_text(value) or format_datetime(parse_datetime(value))
    except (ValueError, OverflowError) as exc:
        raise ValueViolation(
            "datetime", f"{display(value)} is not a valid date-time: {exc}"
        ) from None


_UUID4 = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)


def check_uuid(value: object) -> object:
    if type(value) is not str:
        raise _wrong_kind("a UUID string", value)
    if _UUID4.fullmatch(value):
        return value.lower()
    raise ValueViolation(
        "uuid",
        f"{display(value)} is not a version 4 UUID in 8-4-4-4-12 hex form "
        "(e.g. 0b5d2f7e-3c1a-4e9b-8f6d-2a7c9e1b4d30)",
    )


def _enum_checker(options: tuple[str, ...]) -> Checker:
    allowed = frozenset(options)
    listing = ", ".join(shorten(o, 30) for o in options[:20]) + (", …" if len(options) > 20 else "")

    def check(value: object) -> object:
        if type(value) is not str:
            raise _wrong_kind("one of the enum options (a string)", value)
        if value in allowed:
            return value
        raise ValueViolation("enum_option", f"{display(value)} is not one of: {listing}")

    return check


# A float32 is NaN or infinite when its 8 exponent bits are all set: the low 7 bits
# of its most significant byte and the top bit of the next. Stepped slices pick
# those bytes of every element at once; translate marks the telling bit patterns.
_HIGH, _NEXT = (3, 2) if sys.byteorder == "little" else (0, 1)
_EXPONENT_HIGH = bytes(int(b & 0x7F == 0x7F) for b in range(256))
_EXPONENT_LOW = bytes(b >> 7 for b in range(256))


def float32_finite(vector: array[float]) -> bool:
    """Whether every element of an array('f') is finite (about 2x faster than a sum)."""
    raw = vector.tobytes()
    high = int.from_bytes(raw[_HIGH::4].translate(_EXPONENT_HIGH))
    return not high or not high & int.from_bytes(raw[_NEXT::4].translate(_EXPONENT_LOW))


def _embedding_checker(size: int) -> Checker:
    def check(value: object) -> object:
        if type(value) is list:  # an int list is accepted and widened to floats
            try:
                value = array("f", value)
            except (OverflowError, TypeError):
                raise _wrong_kind(f"{size} floats", value) from None
        if type(value) is not array:
            raise _wrong_kind(f"an embedding of {size} floats", value)
        if len(value) != size:
            raise ValueViolation(
                "embedding_size",
                f"embedding has {len(value)} float(s); the key needs exactly {size}",
            )
        if not float32_finite(value):
            bad = next(i for i, x in enumerate(value) if not math.isfinite(x))
            raise ValueViolation(
                "finite", f"embedding element {bad} is {value[bad]!r}; all must be finite"
            )
        return value

    return check


def check_keyframes(value: object) -> object:
    if type(value) is array and len(value) == 0:
        return []
    if type(value) is not list:
        raise _wrong_kind("a list of non-negative frame numbers", value)
    for frame in value:
        if type(frame) is not int or frame < 0 or frame > INT64_MAX:
            raise ValueViolation(
                "keyframes", f"keyframes must be non-negative integers; found {display(frame)}"
            )
    return value


def check_unknown(value: object) -> object:
    """Values of undeclared keys (when the schema allows them): scalars only."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:  # type: ignore[operator]
            raise ValueViolation("nul_character", f"{display(value)} contains a NUL character")
        return value
    if kind is bool:
        return value
    if kind is float or kind is int:
        return check_number(value)
    raise ValueViolation(
        "unknown_key_value",
        f"undeclared keys take a string, number or boolean, not {describe_kind(value)}; "
        "declare the key to store lists",
    )


_NUMBER_TEXT = re.compile(r"\s*-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def _coercing(checker: Checker, key_type: KeyType) -> Checker:
    """Wrap a number or boolean checker to accept CSV-style strings."""

    def check(value: object) -> object:
        if type(value) is str:
            if key_type is KeyType.NUMBER and _NUMBER_TEXT.fullmatch(value):
                value = float(value)
            elif key_type is KeyType.BOOLEAN and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
        return checker(value)

    return check


def _bounded(checker: Checker, minimum: float | None, maximum: float | None) -> Checker:
    """A number checker that also holds the (normalised) value to inclusive bounds."""

    def check(value: object) -> object:
        number = checker(value)
        if minimum is not None and number < minimum:  # type: ignore[operator]
            raise ValueViolation(
                "minimum", f"{display(number)} is below the minimum {format_bound(minimum)}"
            )
        if maximum is not None and number > maximum:  # type: ignore[operator]
            raise ValueViolation(
                "maximum", f"{display(number)} is above the maximum {format_bound(maximum)}"
            )
        return number

    return check


def _matching(checker: Checker, pattern: str) -> Checker:
    """A string checker that also searches the value for an RE2 pattern (linear time)."""
    search = compile_pattern(pattern).search

    def check(value: object) -> object:
        text = checker(value)
        try:
            found = search(text)
        except UnicodeEncodeError:  # a lone surrogate; JSON decoding refuses them first
            found = None
        if found is None:
            raise ValueViolation(
                "pattern", f"{display(text)} does not match the pattern {shorten(pattern, 200)}"
            )
        return text

    return check


def value_checker(definition: KeyDefinition, *, coerce_strings: bool = False) -> Checker:
    """The checker for one declared key's values: its type, then its constraints."""
    checker = _type_checker(definition, coerce_strings)
    constraints: KeyConstraints = definition.constraints
    if constraints.minimum is not None or constraints.maximum is not None:
        checker = _bounded(checker, constraints.minimum, constraints.maximum)
    if constraints.pattern is not None:
        checker = _matching(checker, constraints.pattern)
    return checker


def _type_checker(definition: KeyDefinition, coerce_strings: bool) -> Checker:
    match definition.type:
        case KeyType.VARCHAR:
            return _string_checker(definition.max_length, "varchar")
        case KeyType.TEXT:
            return _string_checker(None, "text")
        case KeyType.NUMBER:
            return _coercing(check_number, KeyType.NUMBER) if coerce_strings else check_number
        case KeyType.BOOLEAN:
            return _coercing(check_boolean, KeyType.BOOLEAN) if coerce_strings else check_boolean
        case KeyType.DATETIME:
            return check_datetime
        case KeyType.UUID:
            return check_uuid
        case KeyType.ENUM:
            return _enum_checker(definition.enum_options)
        case KeyType.EMBEDDING:
            assert definition.embedding_size is not None
            return _embedding_checker(definition.embedding_size)
    raise AssertionError(definition.type)  # pragma: no cover
