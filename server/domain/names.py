"""Naming rules for schemas, keys, enum options and data unit ids."""

from __future__ import annotations

import re

SCHEMA_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_SCHEMA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")

RESERVED_KEYFRAMES = "keyframes"
MAX_KEY_LENGTH = 256
MAX_DATA_UNIT_ID_LENGTH = 256
MAX_ENUM_OPTION_LENGTH = 256

_BAD_KEY_CHAR = re.compile(r"[^A-Za-z0-9 ._-]")
_ALNUM = re.compile(r"[A-Za-z0-9]")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

# The same key rule as a JSON Schema (ECMA 262) pattern, for exported schemas.
# `(?!.*\n)` keeps Python's `$` (which also matches before a final newline)
# as strict as ECMA's.
KEY_NAME_PATTERN = r"^(?!.*\n)(?=[^ ])(?=.*[A-Za-z0-9])[A-Za-z0-9 ._-]{1,256}(?<! )$"


def shorten(value: object, limit: int = 60) -> str:
    """A display form of a value, cut to about `limit` characters."""
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def is_utf8(text: str) -> bool:
    """False for text with lone surrogates: JSON can carry them, but gRPC and the
    databases take UTF-8 only."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def schema_name_problem(name: str) -> str | None:
    """Why `name` is not a valid schema name, or None when it is."""
    if _SCHEMA_NAME.fullmatch(name):
        return None
    return (
        f"schema name {shorten(name)} is invalid: use 1..128 characters from a-z, 0-9, "
        "'.', '_' and '-', starting with a letter or digit"
    )


def key_name_problem(key: str, *, allow_reserved: bool = False) -> str | None:
    """Why `key` is not a valid key name, or None when it is."""
    if not key:
        return "key name must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"key name is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
    bad = _BAD_KEY_CHAR.search(key)
    if bad:
        return (
            f"key name {shorten(key)} contains {bad.group()!r}; allowed are letters A-Z and "
            "a-z, digits, space, '-', '_' and '.'"
        )
    if key[0] == " " or key[-1] == " ":
        return f"key name {shorten(key)} must not start or end with a space"
    if not _ALNUM.search(key):
        return f"key name {shorten(key)} must contain at least one letter or digit"
    if key == RESERVED_KEYFRAMES and not allow_reserved:
        return '"keyframes" is reserved (records may carry it as a list of frame numbers)'
    return None


def is_valid_key_name(key: str) -> bool:
    return key_name_problem(key, allow_reserved=True) is None


def enum_option_problem(option: str) -> str | None:
    if not option:
        return "enum option must not be empty"
    if len(option) > MAX_ENUM_OPTION_LENGTH:
        return (
            f"enum option {shorten(option)} is {len(option)} characters long; "
            f"the limit is {MAX_ENUM_OPTION_LENGTH}"
        )
    if CONTROL_CHARACTER.search(option):
        return f"enum option {shorten(option)} contains a control character"
    return None


def data_unit_id_problem(data_unit_id: str) -> str | None:
    if not data_unit_id:
        return "data_unit_id must not be empty"
    if len(data_unit_id) > MAX_DATA_UNIT_ID_LENGTH:
        return (
            f"data_unit_id is {len(data_unit_id)} characters long; "
            f"the limit is {MAX_DATA_UNIT_ID_LENGTH}"
        )
    if CONTROL_CHARACTER.search(data_unit_id):
        return f"data_unit_id {shorten(data_unit_id)} contains a control character"
    return None
