"""Facets: which keys have values to list, and how a prefix bounds an index range."""

from __future__ import annotations

from ..errors import FieldViolation, InvalidArgument
from ..names import is_utf8, shorten
from ..schema import VARCHAR_MAX_LENGTH, KeyDefinition, KeyState, KeyType, SchemaState
from .index import INDEX_PREFIX

DEFAULT_FACETS = 20
MAX_FACETS = 1000
FACET_TYPES = frozenset(
    {KeyType.VARCHAR, KeyType.ENUM, KeyType.UUID, KeyType.BOOLEAN, KeyType.NUMBER}
)
PREFIX_TYPES = frozenset({KeyType.VARCHAR, KeyType.ENUM, KeyType.UUID})


def facet_key(state: SchemaState, key: str, prefix: str) -> KeyDefinition:
    """The visible key whose values are listed; InvalidArgument naming it otherwise."""
    definition = state.get(key)
    if definition is None or definition.state is KeyState.HARD_DELETED:
        raise _bad_facet("key", f"schema has no key {shorten(key)}")
    if definition.state is KeyState.SOFT_DELETED:
        raise _bad_facet("key", f'key "{key}" is soft-deleted; restore it to list its values')
    if definition.type not in FACET_TYPES:
        raise _bad_facet(
            "key",
            f'key "{key}" is of type {definition.type}; values are listed for varchar, '
            "enum, uuid, boolean and number keys",
        )
    if prefix and definition.type not in PREFIX_TYPES:
        raise _bad_facet(
            "prefix",
            f'key "{key}" is of type {definition.type}: a prefix applies to varchar, enum '
            f"and uuid keys only, got prefix {shorten(prefix)}",
        )
    if not is_utf8(prefix) or "\x00" in prefix:
        raise _bad_facet("prefix", "prefix must be UTF-8 text without NUL characters")
    return definition


def _bad_facet(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(description, [FieldViolation(field, description)])


def whole_in_index(definition: KeyDefinition) -> bool:
    """Whether every value of the key fits its index entry uncut (see INDEX_PREFIX)."""
    match definition.type:
        case KeyType.VARCHAR:
            return (definition.max_length or VARCHAR_MAX_LENGTH) <= INDEX_PREFIX
        case KeyType.ENUM:
            return all(len(option) <= INDEX_PREFIX for option in definition.enum_options)
        case _:
            return True  # numbers, booleans and uuids


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in code point
    order (None when there is none): the exclusive end of the prefix's range."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:  # surrogates are never stored: skip over them
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None
