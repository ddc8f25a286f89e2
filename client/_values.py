"""Python values <-> metareg.v1.Value, with a packed-bytes fast path for embeddings.

The typed form, for update_by_filter, reads and offline checks; bundles and validation
send the JSON record form (`_json_form`), which follows the same value rules.
str, float, int, bool and None map to the scalar kinds (a bool is never a number).
A list of floats, an `array.array` of floats or a numpy-like float array is an
embedding; a list of ints is an int list (the reserved `keyframes` key). Datetimes
and UUIDs are sent as their ISO 8601 / canonical string forms.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import uuid
from array import array
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import wire

from ._errors import ValueConversionError
from ._results import StoredRecord

_JSON_TYPES = frozenset({str, int, float, bool, list})


def _set_embedding(target: mpb.Value, raw: bytes) -> None:
    wire.set_floats(target.embedding_value, raw)


INT64_BOUND = 2**63
UPDATE_MODES = ("merge", "replace", "keep_existing")


def mode_name(mode: str) -> str:
    """An update mode's name, from any letter case; ValueError for an unknown mode."""
    name = mode if mode in UPDATE_MODES else str(mode).lower()
    if name not in UPDATE_MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of: {', '.join(UPDATE_MODES)}")
    return name


def list_value(items: Sequence[Any]) -> list[int] | array[float]:
    """A list as the value it denotes, by the rules both forms share: only ints (the empty
    list too) are an int list (keyframes), other numbers a float32 vector (embedding)."""
    kinds = set(map(type, items))
    if kinds <= {int}:
        if items and (min(items) < -INT64_BOUND or max(items) >= INT64_BOUND):
            outside = next(x for x in items if not -INT64_BOUND <= x < INT64_BOUND)
            raise ValueConversionError(
                f"{outside} in an int list is out of range: ints are 64-bit (keyframes)"
            )
        return list(items)
    if bool in kinds:
        raise ValueConversionError("a list with booleans is not a value (a bool is not a number)")
    try:
        return array("f", items)
    except TypeError:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise ValueConversionError(
            f"a list of {names} is not a value: use floats (embedding) or ints (keyframes)"
        ) from None
    except OverflowError:  # an int beyond a double
        raise ValueConversionError("a list holds a number too large for a float") from None


def _encode_list(items: Sequence[Any], target: mpb.Value) -> None:
    value = list_value(items)
    if type(value) is list:
        target.int_list_value.SetInParent()
        target.int_list_value.values.extend(value)
    else:
        _set_embedding(target, wire.float32_bytes(value))


def _encode_array_like(value: Any, target: mpb.Value) -> None:
    """array.array and numpy-like arrays (anything with dtype or typecode and tobytes)."""
    typecode = getattr(value, "typecode", None)
    if typecode is not None:
        if typecode == "f":
            _set_embedding(target, wire.float32_bytes(value))
        elif typecode == "d":
            _set_embedding(target, wire.float32_bytes(array("f", value)))
        else:
            _encode_list(value.tolist(), target)
        return
    ndim = getattr(value, "ndim", 1)
    if ndim == 0 and callable(getattr(value, "item", None)):  # a numpy scalar
        encode_value(value.item(), target)
        return
    kind = getattr(value.dtype, "kind", "")
    if ndim != 1:
        raise ValueConversionError(f"an array of shape {value.shape} is not a value: use 1-d")
    if kind == "f" and callable(getattr(value, "astype", None)):
        _set_embedding(target, value.astype("<f4").tobytes())
    else:
        _encode_list(value.tolist(), target)


def encode_value(value: object, target: mpb.Value) -> None:
    """Fill `target` from a plain Python value."""
    kind = type(value)
    if kind is str:
        try:
            target.string_value = value
        except UnicodeEncodeError:
            raise ValueConversionError(not_utf8(str(value))) from None
    elif kind is bool:
        target.bool_value = value
    elif kind is float or kind is int:
        try:
            target.number_value = value
        except (OverflowError, ValueError):
            raise ValueConversionError(f"{value} is too large for a number") from None
    elif value is None:
        target.null_value = 0
    elif kind is list or kind is tuple:
        _encode_list(value, target)  # type: ignore[arg-type]
    elif hasattr(value, "dtype") or hasattr(value, "typecode"):
        _encode_array_like(value, target)
    elif isinstance(value, datetime | date):
        target.string_value = value.isoformat()
    elif isinstance(value, uuid.UUID):
        target.string_value = str(value)
    elif isinstance(value, bool):  # subclasses of the plain kinds, e.g. enum.StrEnum
        encode_value(bool(value), target)
    elif isinstance(value, str):
        encode_value(str(value), target)
    elif isinstance(value, int | float):
        encode_value(float(value), target)
    elif callable(getattr(value, "tolist", None)):  # tensors and other array-likes
        encode_value(value.tolist(), target)  # type: ignore[attr-defined]
    elif isinstance(value, Mapping):
        raise ValueConversionError(
            "a nested object is not a value: flatten it (flatten_nested=True turns "
            '{"capture": {"temp": 1}} into {"capture.temp": 1})'
        )
    else:
        raise ValueConversionError(f"a {kind.__name__} is not a metadata value")


def flatten(metadata: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """{"capture": {"temp": 1}} -> {"capture.temp": 1}; a key given twice is an error."""
    flat: dict[str, object] = {}
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        items = (
            flatten(value, f"{name}.").items() if isinstance(value, Mapping) else [(name, value)]
        )
        for flat_key, flat_value in items:
            if flat_key in flat:
                raise ValueConversionError(f'key "{flat_key}" is given twice once flattened')
            flat[flat_key] = flat_value
    return flat


def not_utf8(text: str) -> str:
    return f"{text[:40]!r} is not valid UTF-8 text (it holds a lone surrogate)"


def check_text(text: str, what: str) -> None:
    """ValueConversionError unless `text` can be sent (protobuf strings are UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueConversionError(f"{what} {not_utf8(text)}") from None


def encode_metadata(
    metadata: Mapping[str, object],
    target: MutableMapping[str, mpb.Value],
    *,
    flatten_nested: bool = False,
) -> None:
    """Fill a proto `map<string, Value>` from a Python mapping."""
    if not isinstance(metadata, Mapping):
        raise ValueConversionError(
            f"metadata must be a mapping of key -> value, not a {type(metadata).__name__}"
        )
    if flatten_nested:
        metadata = flatten(metadata)
    for key, value in metadata.items():
        if type(key) is not str:
            raise ValueConversionError(f"key {key!r} is not a string")
        check_text(key, "key")
        try:
            encode_value(value, target[key])
        except ValueConversionError as error:
            raise ValueConversionError(f'key "{key}": {error.message}', key) from None


def _unpack_floats(message: mpb.FloatList) -> list[float]:
    return shortest_floats(wire.read_floats(message))


def shortest_floats(vector: array[float]) -> list[float]:
    """Each float32 as the float of the shortest decimal that rounds back to it: 0.12
    rather than 0.11999999731779099 (the float32 nearest 0.12, as a double).

    With numpy at hand, orjson writes the float32 values in their shortest form (Ryū)
    and reads them back, in C. Without it, the shortest has the fewest significant
    digits, 6 to 9 (9 always round-trip), at which the value rounded still comes back;
    each round of digits formats and parses the values not yet settled at once. The
    two agree but at a few exact powers of two (where the pure form takes a digit more)
    and on subnormals; both always round-trip.
    """
    numpy = _numpy(len(vector))
    if numpy is not None:
        floats = orjson.loads(orjson.dumps(numpy.frombuffer(vector, numpy.float32), option=_NUMPY))
        if None not in floats:  # NaN and infinity become null (the server refuses them)
            return list(floats)
    floats = vector.tolist()
    try:
        result = _rounded(floats, 6)
    except orjson.JSONDecodeError:  # NaN or infinity
        return [_shortest_float(x) for x in floats]
    back = array("f", result)
    if back == vector:
        return result
    pending = [
        i
        for i, (returned, original) in enumerate(zip(back, floats, strict=True))
        if returned != original
    ]
    for digits in (7, 8):
        originals = [floats[i] for i in pending]
        candidates = _rounded(originals, digits)
        still: list[int] = []
        for i, candidate, returned, original in zip(
            pending, candidates, array("f", candidates), originals, strict=True
        ):
            if returned == original:
                result[i] = candidate
            else:
                still.append(i)
        pending = still
        if not pending:
            return result
    for i, candidate in zip(pending, _rounded([floats[i] for i in pending], 9), strict=True):
        result[i] = candidate
    return result


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
# Importing numpy takes a few tenths of a second: worth it only once this many floats
# were read the slow way (a few tenths of a second of formatting) in this process.
_NUMPY_AFTER_FLOATS = 200_000
_slow_floats = 0


def _numpy(count: int) -> Any:
    """numpy if it is imported already, or installed and enough floats were read without it."""
    global _slow_floats
    numpy = sys.modules.get("numpy")
    if numpy is not None or _slow_floats < 0:
        return numpy
    _slow_floats += count
    if _slow_floats > _NUMPY_AFTER_FLOATS:
        if importlib.util.find_spec("numpy") is None:
            _slow_floats = -1  # not installed: never look again
            return None
        import numpy

        return numpy
    return None


def _rounded(floats: list[float], digits: int) -> list[float]:
    """`floats` rounded to `digits` significant digits (in %e form: -0.0 stays a float)."""
    if not floats:
        return []
    template = f"%.{digits - 1}e," * len(floats)
    return list(orjson.loads(f"[{template[:-1] % tuple(floats)}]"))


def _shortest_float(value: float) -> float:
    """One float32 value (as a double) as in `shortest_floats`; NaN and ±inf as they are."""
    if value != value or value in (float("inf"), float("-inf")):
        return value
    for digits in (6, 7, 8):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == value:
            return candidate
    return float(f"{value:.9g}")


def decode_value(value: mpb.Value) -> object:
    """The plain Python value of a metareg.v1.Value (an embedding is a list of floats)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "embedding_value":
        return _unpack_floats(value.embedding_value)
    if kind == "int_list_value":
        return list(value.int_list_value.values)
    return None


def decode_metadata(metadata: Mapping[str, mpb.Value]) -> dict[str, object]:
    return {key: decode_value(value) for key, value in sorted(metadata.items())}


def json_ready(metadata: Mapping[str, object], *, flatten_nested: bool = False) -> dict[str, Any]:
    """A record as a JSON Schema validator sees it: plain JSON values pass through, others
    (arrays, tuples, datetimes…) get the conversions `encode_value` gives them."""
    if flatten_nested:
        metadata = flatten(metadata)
    ready: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None or type(value) in _JSON_TYPES:
            ready[key] = value
            continue
        message = mpb.Value()
        try:
            encode_value(value, message)
        except ValueConversionError as error:
            raise ValueConversionError(f'key "{key}": {error.message}', key) from None
        ready[key] = decode_value(message)
    return ready


def as_pairs(
    records: Mapping[str, Mapping[str, object]] | Iterable[Any],
) -> Iterable[tuple[str, Mapping[str, object]]]:
    """(data_unit_id, metadata) pairs from a dict, or a list of pairs, of
    {"data_unit_id": ..., "metadata": {...}} objects or of StoredRecords."""
    if isinstance(records, Mapping):
        yield from records.items()
        return
    for item in records:
        if isinstance(item, StoredRecord):
            yield item.data_unit_id, item.metadata
        elif isinstance(item, Mapping):
            if "data_unit_id" not in item:
                raise ValueConversionError(
                    'each record must have "data_unit_id" and "metadata" (or be a pair)'
                )
            yield item["data_unit_id"], item.get("metadata", {})
        elif isinstance(item, tuple | list) and len(item) == 2:
            yield item[0], item[1]
        else:
            raise ValueConversionError(
                f"a record must be a (data_unit_id, metadata) pair or an object, not {item!r}"
            )
