"""The JSON record form: a request's JSON array of records as updates with domain values.

Values become what the typed form's Value kinds decode to (metadata.proto), so that
both forms meet the same validator and give the same violations: an integer is a
number (a double), an array of integers an int list, any other array of numbers a
float list, and a string given for a key declared as an embedding is the base64 of
its little-endian float32 values. JSON that does not parse, and records of the wrong
shape, are MalformedRecords naming the byte offset or the record and its field.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .bundle import MAX_BUNDLE_UPDATES, MetadataUpdate, UpdateMode
from .errors import FieldViolation, InvalidArgument, MalformedRecords, RequestTooLarge
from .names import shorten
from .schema import KeyType, SchemaState
from .validator import Problem
from .values import float32_vector

MAX_RECORDS = MAX_BUNDLE_UPDATES  # per request, in both forms

MODES: Mapping[str | None, UpdateMode] = {
    None: UpdateMode.MERGE,
    "merge": UpdateMode.MERGE,
    "replace": UpdateMode.REPLACE,
    "keep_existing": UpdateMode.KEEP_EXISTING,
}


class _Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    data_unit_id: str = ""
    metadata: dict[str, Any] = {}
    mode: str | None = None


class _RawRecord(msgspec.Struct):
    """A record whose values are left undecoded, to find the one that does not decode."""

    metadata: dict[str, msgspec.Raw] = {}


# The length limit makes msgspec refuse an oversized array before building its records.
_RECORDS = msgspec.json.Decoder(Annotated[list[_Record], Meta(max_length=MAX_RECORDS)])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_RECORD = msgspec.json.Decoder(_Record)
_RAW_RECORD = msgspec.json.Decoder(_RawRecord)
_ANY = msgspec.json.Decoder()
_DECODING_ERRORS = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError


def embedding_keys(state: SchemaState) -> frozenset[str]:
    """Keys whose JSON strings are base64 embeddings: declared embeddings in any state,
    so that a deleted one is reported as deleted, with the vector shown, as when typed."""
    return frozenset(d.key for d in state if d.type is KeyType.EMBEDDING)


def decode_records(raw: bytes, state: SchemaState, field: str) -> list[MetadataUpdate]:
    """Every record of `raw` (the JSON array in request field `field`) as an update."""
    try:
        records = _RECORDS.decode(raw)
    except _DECODING_ERRORS:
        raise malformed(raw, field) from None
    vectors = embedding_keys(state)
    return [_update(record, vectors, f"{field}[{index}]") for index, record in enumerate(records)]


def _update(record: _Record, vectors: frozenset[str], where: str) -> MetadataUpdate:
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for key, value in record.metadata.items():
        try:
            values[key] = domain_value(value, key in vectors)
        except _NoKind as error:
            problems.append(Problem(key, error.rule, str(error), shorten(value)))
        except _OutOfRange as error:
            path = f"{where}.metadata[{_quoted(key)}]"
            raise _error(path, f"{path}: {error}") from None
    mode = MODES.get(record.mode)
    if mode is None:
        shown = shorten(record.mode)
        problems.append(
            Problem("", "mode", f"unknown update mode {shown}; use merge, replace or keep_existing",
                    shown)
        )  # fmt: skip
        mode = UpdateMode.MERGE
    return MetadataUpdate(record.data_unit_id, values, mode, tuple(problems))


class _NoKind(Exception):
    """A JSON value that is none of the typed form's Value kinds."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


_JSON_KINDS = {str: "strings", bool: "booleans", dict: "objects", list: "arrays"}


class _OutOfRange(Exception):
    """An integer literal beyond the range of a double: malformed, as 1e400 is."""


def domain_value(value: object, embedding: bool) -> object:
    """One JSON value as the typed form would carry it (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return float32_from_base64(value) if embedding else value  # type: ignore[arg-type]
    if kind is int:
        return _double(value)  # type: ignore[arg-type]
    if kind is list:
        return _list_value(value)  # type: ignore[arg-type]
    if kind is dict:
        raise _NoKind(
            "type",
            "a JSON object is not a value: flatten nested objects into dotted keys "
            '({"capture": {"temp": 1}} as {"capture.temp": 1})',
        )
    return value  # float, bool, None


def _double(number: int) -> float:
    try:
        return float(number)
    except OverflowError:
        raise _OutOfRange(f"the number {str(number)[:40]}… is out of range for a double") from None


def _list_value(items: list[Any]) -> object:
    kinds = set(map(type, items))
    if kinds <= {int}:  # also []: an int list, as keyframes are
        if items:  # kept as ints (keyframes may need every digit), but within a double
            _double(min(items))
            _double(max(items))
        return items
    if kinds <= {int, float}:
        for number in items:
            if type(number) is int:
                _double(number)
        return array("f", items)
    names = ", ".join(sorted(_JSON_KINDS.get(k, "nulls") for k in kinds - {int, float}))
    raise _NoKind(
        "type",
        f"a JSON array of {names} is not a value: use numbers (an embedding) or "
        "integers (keyframes)",
    )


def float32_from_base64(text: str) -> array[float]:
    """An embedding from the standard base64 of its little-endian float32 values (msgspec
    decodes it, as the fast path's bytes fields do, so both accept the same text)."""
    try:
        raw = msgspec.convert(text, bytes)
    except msgspec.ValidationError:
        raise _NoKind(
            "base64",
            "an embedding given as a string must be the standard base64 (with padding) "
            "of little-endian float32 values",
        ) from None
    if len(raw) % 4:
        raise _NoKind(
            "base64", f"base64 embedding decodes to {len(raw)} bytes, not whole float32 values"
        )
    return float32_vector(raw)


# --- malformed input: find and name the first problem ------------------------------

_AT = re.compile(r" - at `\$(.*)`$")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`(?: - at `\$.*`)?", re.S)
_BYTE = re.compile(r"\(byte ([0-9]+)\)")


def malformed(raw: bytes, field: str) -> InvalidArgument:
    """The error for `raw` that does not decode as records, naming where it fails (or
    RequestTooLarge for more records than a request may carry)."""
    try:
        elements = _RAW_LIST.decode(raw)
    except msgspec.ValidationError:
        return _error(field, f"{field} must be a JSON array of records, not another JSON value")
    except msgspec.DecodeError as error:
        return _error(field, f"{field} is not valid JSON: {_syntax(raw, error)}")
    except RecursionError:
        return _too_deep(field)
    if len(elements) > MAX_RECORDS:
        noun = field.removesuffix("_json")
        return RequestTooLarge(f"{len(elements)} {noun} in one request; the limit is {MAX_RECORDS}")
    for index, element in enumerate(elements):
        where = f"{field}[{index}]"
        try:
            _RECORD.decode(element)
        except msgspec.ValidationError as error:  # (a subclass of DecodeError)
            return _record_error(where, element, str(error))
        except msgspec.DecodeError as error:  # skipped over as raw, but not decodable
            return _error(field, f"{field} is not valid JSON: {_syntax(raw, error)}")
        except RecursionError:
            return _too_deep(where)
    return _error(field, f"{field} does not decode as records")  # pragma: no cover


def _too_deep(where: str) -> MalformedRecords:
    return _error(where, f"{where} is nested too deeply to decode")


def _record_error(where: str, element: bytes, message: str) -> MalformedRecords:
    if message.startswith("Expected `object`") and " - at " not in message:
        return _error(where, f"{where} must be a JSON object with data_unit_id and metadata")
    unknown = _UNKNOWN_FIELD.fullmatch(message)
    if unknown is not None:
        name = unknown.group(1)
        return _error(
            where,
            f"{where} has an unknown field {shorten(name)}; a record has data_unit_id, "
            "metadata and mode",
        )
    at = _AT.search(message)
    path = at.group(1) if at else ""
    if path.startswith(".metadata["):  # a value that does not decode: which key?
        for key, value in _RAW_RECORD.decode(element).metadata.items():
            try:
                _ANY.decode(value)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                detail = _plain(str(error))
                if detail == "Number out of range":
                    number = bytes(value).decode(errors="replace")
                    detail = f"the number {number[:40]} is out of range for a double"
                field = f"{where}.metadata[{_quoted(key)}]"
                return _error(field, f"{field}: {detail}")
        path = ".metadata"  # e.g. a key given twice, whose first value does not decode
    return _error(f"{where}{path}", f"{where}{path}: {_plain(message)}")


_JSON_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "object": "an object",
    "array": "an array",
    "str | null": "a string or null",
}
_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")


def _plain(message: str) -> str:
    """msgspec's message without its path, in this API's words."""
    text = message.split(" - at ")[0]
    expected = _EXPECTED.fullmatch(text)
    if expected is None:
        return text
    want, got = (_JSON_TYPE_NAMES.get(name, f"`{name}`") for name in expected.groups())
    return f"expected {want}, got {got}"


def _quoted(key: str) -> str:
    return msgspec.json.encode(key).decode()


# A \u escape of a high surrogate not followed by a low one, or a low one not preceded
# by a high one; an escape counts only after an even number of backslashes.
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F])"
    rb"|(?<![0-9a-fA-F]{2})(?<!\\)(?:\\\\)*(\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _syntax(raw: bytes, error: msgspec.DecodeError) -> str:
    message = str(error).removeprefix("JSON is malformed: ")
    if _BYTE.search(message):
        return message
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 (byte {bad.start})"
    # msgspec says "truncated" for an unpaired surrogate escape too; find which.
    found = _LONE_SURROGATE.search(raw)
    if found is not None:
        group = 1 if found.group(1) else 2
        escape = found.group(group).decode()
        return f"an unpaired surrogate escape {escape} (byte {found.start(group)})"
    if message == "Input data was truncated":
        return f"the JSON ends early (byte {len(raw)})"
    return message


def _error(field: str, message: str) -> MalformedRecords:
    return MalformedRecords(message, [FieldViolation(field, message, "json")])
