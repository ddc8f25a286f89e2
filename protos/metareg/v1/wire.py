"""Embeddings to and from the packed wire form of metareg.v1.FloatList (hand-written).

Appending or iterating 512 floats one by one through the protobuf API costs tens
of microseconds per vector. A packed repeated float field is just a tag, a
length and little-endian float32 bytes, so both directions can go through bytes.
Shared by the server and the client, which both depend on metareg.v1 only.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

_LITTLE_ENDIAN = sys.byteorder == "little"
_FIELD_1_PACKED = b"\x0a"  # field number 1, wire type 2 (length-delimited)


def _varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def float32_bytes(vector: array[float]) -> bytes:
    """The little-endian float32 bytes of a vector of 'f' floats."""
    if not _LITTLE_ENDIAN:  # pragma: no cover - the wire format is little-endian
        vector = array("f", vector)
        vector.byteswap()
    return vector.tobytes()


def set_floats(message: Any, raw: bytes) -> None:
    """Fill an empty FloatList from little-endian float32 bytes."""
    message.SetInParent()
    if raw:
        message.MergeFromString(_FIELD_1_PACKED + _varint(len(raw)) + raw)


def read_floats(message: Any) -> array[float]:
    """A FloatList's values as array('f'), read from its serialised bytes.

    The fast path takes the bytes as they are when they hold nothing but the one
    packed field. Anything else (unknown fields a sender added, say) goes through
    the protobuf API, which knows which bytes are values.
    """
    raw: bytes = message.SerializeToString()
    vector = array("f")
    if not raw:
        return vector
    position, length, shift = 1, 0, 0
    if raw[0] == _FIELD_1_PACKED[0]:
        while position < len(raw):
            byte = raw[position]
            position += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
    if raw[0] != _FIELD_1_PACKED[0] or position + length != len(raw) or length % 4:
        return array("f", message.values)
    vector.frombytes(raw[position:])
    if not _LITTLE_ENDIAN:  # pragma: no cover
        vector.byteswap()
    return vector
