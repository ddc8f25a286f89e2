"""Schema files: read a .json, .yaml or .yml import document, naming the file and entry
in every error.

Only the file format is checked here (a mapping of key -> type name or object). The
schema rules are the server's: its violations name the entry as `document["key"]`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._errors import SchemaFileError

SCHEMA_FILE_SUFFIXES = (".json", ".yaml", ".yml")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice (plain YAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str | int | float | bool | None):  # e.g. `? [a, b]`
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, not {key!r}", key_node.start_mark
            )
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} is given twice")
        result[key] = value
    return result


def _parse(path: Path, text: str) -> object:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as error:
            raise SchemaFileError(
                f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
        except ValueError as error:
            raise SchemaFileError(f"{path}: {error}") from None
        except RecursionError:
            raise SchemaFileError(f"{path}: JSON nested too deeply") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise SchemaFileError(f"{path}: YAML nested too deeply") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SchemaFileError(f"{path}: invalid YAML{where}: {problem}") from None


def _check_entry(path: Path, key: object, entry: object) -> None:
    if not isinstance(key, str):
        raise SchemaFileError(
            f"{path}: entry {key!r}: key names must be strings (quote it in YAML)"
        )
    if isinstance(entry, str):
        return
    if not isinstance(entry, Mapping):
        raise SchemaFileError(
            f'{path}: entry "{key}": expected a type name such as "varchar" or an object '
            f'with "type", got {entry!r}'
        )
    values = entry.get("values")
    if isinstance(values, list) and not all(isinstance(v, str) for v in values):
        odd = next(v for v in values if not isinstance(v, str))
        raise SchemaFileError(
            f'{path}: entry "{key}": enum values must be strings, got {odd!r} '
            "(YAML reads yes/no/on/off/true/false and numbers as non-strings: quote them)"
        )


def load_schema_file(path: str | os.PathLike[str]) -> dict[str, object]:
    """The import document in a .json, .yaml or .yml file."""
    path = Path(path)
    if path.suffix.lower() not in SCHEMA_FILE_SUFFIXES:
        raise SchemaFileError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(SCHEMA_FILE_SUFFIXES)}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise SchemaFileError(f"{path}: cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise SchemaFileError(f"{path}: not UTF-8 text ({error.reason})") from None
    document = _parse(path, text)
    if document is None:
        raise SchemaFileError(f"{path}: the file is empty; expected a mapping of key -> type")
    if not isinstance(document, Mapping):
        raise SchemaFileError(
            f"{path}: expected a mapping of key -> type at the top level, "
            f"got a {type(document).__name__}"
        )
    for key, entry in document.items():
        _check_entry(path, key, entry)
    return dict(document)
