"""Python values -> the JSON record form of ApplyBundle and ValidateMetadata (DESIGN §6).

Each update or record is encoded once, when it is queued, into the bytes of one JSON
object; a request is those objects joined inside one JSON array. The value rules are
those of `encode_value` (the typed form), with two differences that JSON forces:

- NaN and infinities are refused here (ValueConversionError naming the key): a JSON
  encoder writes them as null, which in merge mode would delete the key.
- A float vector is sent as the base64 of its little-endian float32 bytes only for a
  key the schema declares as an embedding, because the server reads a string as base64
  for those keys alone. For any other key it goes as an array of numbers, which the
  server reads as the float list the typed form would carry, so that a vector given for
  a text key is still a type violation and never a stored base64 string.
"""

from __future__ import annotations

import struct
import sys
import uuid
from array import array
from collections.abc import Container, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from metareg.v1 import schema_registry_pb2 as rpb

from ._errors import CallError, ValueConversionError
from ._transport import READ_RETRY_CODES, Transport
from ._values import INT64_BOUND, check_text, flatten, list_value, mode_name, not_utf8

_LITTLE_ENDIAN = sys.byteorder == "little"
# A double this large rounds to float32 infinity (the largest float32 plus half a step).
_FLOAT32_LIMIT = 2.0**128 - 2.0**103
# msgspec writes bytes as standard padded base64: exactly the embedding string form.
_ENCODER = msgspec.json.Encoder()

_ID_OPEN = b'{"data_unit_id":'
_METADATA = b',"metadata":'
MODE_ENDS: Mapping[str, bytes] = {
    "merge": b"}",  # the default mode: no field needed
    "replace": b',"mode":"replace"}',
    "keep_existing": b',"mode":"keep_existing"}',
}
"""The end of an update's JSON object, by update mode (the record form has no mode)."""


def mode_end(mode: str) -> bytes:
    """The JSON object's end for `mode` (case-insensitive); ValueError for another mode."""
    return MODE_ENDS.get(mode) or MODE_ENDS[mode_name(mode)]


def quoted_id(data_unit_id: str) -> bytes:
    """A data unit id as a JSON string; ValueConversionError unless it is UTF-8 text."""
    if type(data_unit_id) is not str:
        raise ValueConversionError(f"data_unit_id must be a string, not {data_unit_id!r}")
    try:
        return _ENCODER.encode(data_unit_id)
    except UnicodeEncodeError:
        raise ValueConversionError(f"data_unit_id {not_utf8(data_unit_id)}") from None


def record_json(quoted: bytes, metadata_json: bytes, end: bytes = b"}") -> bytes:
    """One element of the JSON array: `{"data_unit_id": ..., "metadata": ...}` + `end`."""
    return b"".join((_ID_OPEN, quoted, _METADATA, metadata_json, end))


def json_array(elements: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(elements) + b"]"


class SchemaEmbeddings(Container[str]):
    """The keys a schema declares as embeddings, read from the server when first asked.

    A key that is an embedding stays one in every later version (type changes and
    re-adding a deleted name are refused), so the set read once never makes a vector go
    as base64 for a key that is not an embedding. A key declared later is simply sent
    as an array of numbers, which the server also reads as an embedding.
    """

    def __init__(self, transport: Transport, schema: str, version: int = 0) -> None:
        self._transport = transport
        self._schema = schema
        self._version = version
        self._keys: frozenset[str] | None = None

    def __contains__(self, key: object) -> bool:
        if self._keys is None:
            self._keys = self._read()
        return key in self._keys

    def _read(self) -> frozenset[str]:
        request = rpb.GetSchemaRequest(name=self._schema, version=self._version)
        try:
            response = self._transport.call(
                self._transport.registry.GetSchema, request, retry_on=READ_RETRY_CODES
            )
        except CallError:
            # Arrays of numbers are right for every key; the request itself will say
            # what is wrong with the schema.
            return frozenset()
        return frozenset(k.key for k in response.schema.keys if k.type == "embedding")


def metadata_json(
    metadata: Mapping[str, object],
    embeddings: Container[str],
    *,
    flatten_nested: bool = False,
) -> bytes:
    """The JSON object of one record's metadata; ValueConversionError naming the key."""
    if type(metadata) is not dict:
        if not isinstance(metadata, Mapping):
            raise ValueConversionError(
                f"metadata must be a mapping of key -> value, not a {type(metadata).__name__}"
            )
        metadata = dict(metadata)
    if flatten_nested:
        metadata = flatten(metadata)
    converted: dict[str, object] | None = None
    # The hot path of bulk loads: plain scalars pass as they are, in one type test each.
    for key, value in metadata.items():
        if type(key) is not str:
            raise ValueConversionError(f"key {key!r} is not a string")
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is float:
            if value - value == 0.0:  # type: ignore[operator]  # false for NaN and ±inf
                continue
        elif kind is int and -INT64_BOUND <= value < INT64_BOUND:  # type: ignore[operator]
            continue
        if converted is None:
            converted = dict(metadata)
        try:
            converted[key] = json_value(value, key, embeddings)
        except ValueConversionError as error:
            raise ValueConversionError(f'key "{key}": {error.message}', key) from None
    values = metadata if converted is None else converted
    try:
        return _ENCODER.encode(values)
    except UnicodeEncodeError:
        raise _lone_surrogate(values) from None


def _lone_surrogate(metadata: Mapping[str, object]) -> ValueConversionError:
    """The error for the first key or string value that is not UTF-8 text."""
    for key, value in metadata.items():
        try:
            check_text(key, "key")
        except ValueConversionError as error:
            return error
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                return ValueConversionError(f'key "{key}": {not_utf8(value)}', key)
    return ValueConversionError("the metadata is not UTF-8 text")  # pragma: no cover


def json_value(value: object, key: str, embeddings: Container[str]) -> object:
    """A value msgspec encodes as the JSON form of `value` (the rules of encode_value)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is float:
        return _finite(value)  # type: ignore[arg-type]
    if kind is int:
        return _number(value)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return _list_json(value, key, embeddings)  # type: ignore[arg-type]
    if hasattr(value, "dtype") or hasattr(value, "typecode"):
        return _array_json(value, key, embeddings)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):  # subclasses of the plain kinds, e.g. enum.StrEnum
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | float):
        try:
            return _finite(float(value))
        except OverflowError:
            raise ValueConversionError(f"{value} is too large for a number") from None
    if callable(getattr(value, "tolist", None)):  # tensors and other array-likes
        return json_value(value.tolist(), key, embeddings)  # type: ignore[attr-defined]
    if isinstance(value, Mapping):
        raise ValueConversionError(
            "a nested object is not a value: flatten it (flatten_nested=True turns "
            '{"capture": {"temp": 1}} into {"capture.temp": 1})'
        )
    raise ValueConversionError(f"a {kind.__name__} is not a metadata value")


def _finite(value: float) -> float:
    if value - value != 0.0:
        raise ValueConversionError(
            f"{value} is not a finite number (NaN, ±infinity and numbers beyond ±1.8e308 "
            "cannot be stored)"
        )
    return value


def _number(value: int) -> int | float:
    """An int as JSON: within int64 as it is, beyond as the double the server makes of it."""
    if -INT64_BOUND <= value < INT64_BOUND:
        return value
    try:
        return float(value)
    except OverflowError:
        raise ValueConversionError(f"{value} is too large for a number") from None


def _list_json(items: Sequence[Any], key: str, embeddings: Container[str]) -> object:
    if items and type(items[0]) is float:  # the common case, an embedding: C speed
        try:
            floats = _as_floats(items)
        except msgspec.ValidationError:
            pass  # a bool or another kind among them: the general rules below say which
        else:
            return _floats_json(floats, key, embeddings)
    value = list_value(items)
    return value if type(value) is list else _vector_json(value, key, embeddings)  # type: ignore[arg-type]


def _as_floats(items: Sequence[Any]) -> list[float]:
    """The items as floats (ints too); msgspec.ValidationError for a bool or a non-number."""
    return msgspec.convert(items, list[float])


def _floats_json(floats: list[float], key: str, embeddings: Container[str]) -> object:
    """A list of floats: base64 float32 bytes for an embedding key, else the list."""
    total = sum(floats)  # not finite if an element is not, or if they are huge
    try:
        if total - total != 0.0:
            raise OverflowError
        raw = struct.pack(f"<{len(floats)}f", *floats)  # OverflowError beyond float32
    except OverflowError:
        raise _not_float32(floats) from None
    return raw if key in embeddings else floats


def _array_json(value: Any, key: str, embeddings: Container[str]) -> object:
    """array.array and numpy-like arrays (anything with dtype or typecode and tobytes)."""
    typecode = getattr(value, "typecode", None)
    if typecode is not None:
        if typecode == "f":
            return _vector_json(
                value if type(value) is array else array("f", value), key, embeddings
            )
        if typecode == "d":
            return _vector_json(array("f", value), key, embeddings)
        return _list_json(value.tolist(), key, embeddings)
    ndim = getattr(value, "ndim", 1)
    if ndim == 0 and callable(getattr(value, "item", None)):  # a numpy scalar
        return json_value(value.item(), key, embeddings)
    if ndim != 1:
        raise ValueConversionError(f"an array of shape {value.shape} is not a value: use 1-d")
    if getattr(value.dtype, "kind", "") == "f" and callable(getattr(value, "astype", None)):
        vector = array("f")
        try:
            vector.frombytes(value.astype("<f4").tobytes())
        except OverflowError:  # array-likes that refuse to round to float32 themselves
            raise ValueConversionError("an array holds a number too large for a float") from None
        if not _LITTLE_ENDIAN:  # pragma: no cover - the wire order is little-endian
            vector.byteswap()
        return _vector_json(vector, key, embeddings)
    return _list_json(value.tolist(), key, embeddings)


def _vector_json(vector: array[float], key: str, embeddings: Container[str]) -> object:
    """A float32 vector: base64 bytes for an embedding key, else an array of numbers."""
    # A sum of float32 values cannot overflow a double, so it is finite exactly when
    # every element is: this also catches doubles beyond float32 that became inf.
    total = sum(vector)
    if total - total != 0.0:
        raise _not_float32(vector)
    if key not in embeddings:
        return vector.tolist()
    if not _LITTLE_ENDIAN:  # pragma: no cover - the wire order is little-endian
        vector = array("f", vector)
        vector.byteswap()
    return vector.tobytes()


def _not_float32(values: Sequence[float]) -> ValueConversionError:
    """The error for the first value that is not a finite float32 (NaN, ±inf, 1e39)."""
    for value in values:
        if value - value != 0.0:
            return ValueConversionError(
                f"the vector holds {value}: embeddings take finite float32 values"
            )
        if abs(value) >= _FLOAT32_LIMIT:
            return ValueConversionError(
                f"the vector holds {value}, beyond float32 (±3.4e38): embeddings take "
                "finite float32 values"
            )
    return ValueConversionError("the vector is not finite float32 values")  # pragma: no cover
