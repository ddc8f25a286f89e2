"""Schema import: turn a desired-state document into schema changes.

The document maps key -> type, in the legacy flat form (`{"camera_id": "varchar"}`)
or the full form (`{"clip": {"type": "embedding", "size": 512}}`, `{"type": "number",
"minimum": 0, "maximum": 1, "required": true, "description": "..."}`). Declared keys
missing from it are soft-deleted; a key's constraints and description are what its
entry says, so an entry without them removes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import FieldViolation, InvalidSchemaChange, InvalidSchemaDocument
from .evolution import (
    AddEmbedding,
    AddEnum,
    AddEnumOptions,
    AddScalar,
    DeleteKey,
    Evolution,
    RestoreKey,
    SchemaChange,
    SetConstraints,
    SetDescription,
    SetIndexed,
    SetOptions,
    SetScalar,
    apply_changes,
)
from .names import shorten
from .schema import (
    NO_CONSTRAINTS,
    KeyConstraints,
    KeyDefinition,
    KeyState,
    KeyType,
    SchemaState,
    parse_type_name,
    valid_type_names,
)

# Every type takes "required" and "description" too (_COMMON_FIELDS).
_FIELDS = {
    KeyType.VARCHAR: {"type", "max_length", "indexed", "pattern"},
    KeyType.TEXT: {"type", "indexed", "pattern"},
    KeyType.NUMBER: {"type", "indexed", "minimum", "maximum"},
    KeyType.ENUM: {"type", "values", "indexed"},
    KeyType.EMBEDDING: {"type", "size"},
}
_SCALAR_FIELDS = {"type", "indexed"}
_COMMON_FIELDS = {"required", "description"}


class _EntryError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DesiredKey:
    """One document entry, parsed but not yet checked against the schema rules."""

    key: str
    type: KeyType
    type_name: str
    max_length: int | None = None
    values: tuple[str, ...] = ()
    size: int | None = None
    indexed: bool = False
    constraints: KeyConstraints = NO_CONSTRAINTS
    description: str = ""


def _integer(entry: Mapping[str, object], name: str) -> int | None:
    raw = entry.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not float(raw).is_integer():
        raise _EntryError(f'"{name}" must be a whole number, got {shorten(raw)}')
    return int(raw)


def _number(entry: Mapping[str, object], name: str) -> float | None:
    raw = entry.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _EntryError(f'"{name}" must be a number, got {shorten(raw)}')
    try:
        return float(raw)
    except OverflowError:
        raise _EntryError(f'"{name}" is too large for a double') from None


def _constraints(entry: Mapping[str, object]) -> tuple[KeyConstraints, str]:
    """The entry's constraints and description, checked for their JSON types only."""
    pattern = entry.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise _EntryError(f'"pattern" must be a string, got {shorten(pattern)}')
    required = entry.get("required", False)
    if not isinstance(required, bool):
        raise _EntryError(f'"required" must be true or false, got {shorten(required)}')
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        raise _EntryError(f'"description" must be a string, got {shorten(description)}')
    constraints = KeyConstraints(_number(entry, "minimum"), _number(entry, "maximum"),
                                 pattern, required)  # fmt: skip
    return constraints, description or ""


def parse_entry(key: str, entry: object) -> DesiredKey:
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, Mapping):
        raise _EntryError(f'expected a type name or an object with "type", got {shorten(entry)}')
    type_name = entry.get("type")
    if not isinstance(type_name, str):
        raise _EntryError(f'"type" must be a type name; valid types: {valid_type_names()}')
    key_type = parse_type_name(type_name)
    if key_type is None:
        raise _EntryError(f"unknown type {shorten(type_name)}; valid types: {valid_type_names()}")
    extra = set(entry) - _FIELDS.get(key_type, _SCALAR_FIELDS) - _COMMON_FIELDS
    if extra:
        raise _EntryError(
            f"unexpected field(s) {', '.join(sorted(extra))} for type {key_type.value}"
        )
    indexed = entry.get("indexed", False)
    if not isinstance(indexed, bool):
        raise _EntryError(f'"indexed" must be true or false, got {shorten(indexed)}')
    constraints, description = _constraints(entry)
    if key_type is KeyType.ENUM:
        values = entry.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _EntryError('an enum needs "values": a list of option strings')
        return DesiredKey(key, key_type, type_name, values=tuple(values), indexed=indexed,
                          constraints=constraints, description=description)  # fmt: skip
    if key_type is KeyType.EMBEDDING:
        size = _integer(entry, "size")
        if size is None:
            raise _EntryError('an embedding needs "size": the number of floats')
        return DesiredKey(key, key_type, type_name, size=size, constraints=constraints,
                          description=description)  # fmt: skip
    max_length = _integer(entry, "max_length")
    return DesiredKey(key, key_type, type_name, max_length=max_length, indexed=indexed,
                      constraints=constraints, description=description)  # fmt: skip


def parse_document(
    document: Mapping[str, object],
) -> tuple[list[DesiredKey], list[FieldViolation]]:
    """Every entry that parses, and a violation for each one that does not, in key order:
    the document arrives as a protobuf Struct, whose map order differs from process to
    process, and the same document must be rejected in the same words every time."""
    desired: list[DesiredKey] = []
    violations: list[FieldViolation] = []
    for key, entry in sorted(document.items()):
        try:
            desired.append(parse_entry(key, entry))
        except _EntryError as error:
            violations.append(FieldViolation(f'document["{key}"]', str(error), "document"))
    return desired, violations


def _changes_for(current: KeyDefinition | None, want: DesiredKey) -> list[SchemaChange]:
    """Changes that make one key match the document (raises _EntryError when impossible)."""
    constraints, description = want.constraints, want.description
    if current is None or current.state is KeyState.HARD_DELETED:
        # A hard-deleted name is rejected by the evolution rules with their message.
        if want.type is KeyType.ENUM:
            return [AddEnum(want.key, want.values, want.indexed, constraints, description)]
        if want.type is KeyType.EMBEDDING:
            assert want.size is not None
            return [AddEmbedding(want.key, want.size, constraints, description)]
        return [AddScalar(want.key, want.type_name, want.max_length, want.indexed,
                          constraints, description)]  # fmt: skip
    # Constraints and description follow the type (or option) changes, which may drop
    # constraints, and a restore; each change that alters nothing makes no version.
    described: list[SchemaChange] = [
        SetConstraints(want.key, constraints),
        SetDescription(want.key, description),
    ]
    restore: list[SchemaChange] = [] if current.active else [RestoreKey(want.key)]
    if current.type.is_scalar and want.type.is_scalar:
        # set_scalar restores a soft-deleted key itself
        return [SetScalar(want.key, want.type_name, want.max_length, want.indexed), *described]
    if current.type is not want.type:
        raise _EntryError(
            f"cannot change key from {current.describe_type()} to {want.type.value}: "
            f"{current.type.value if not current.type.is_scalar else want.type.value} keys "
            "cannot change type; use a new key name"
        )
    if want.type is KeyType.EMBEDDING:
        if want.size != current.embedding_size:
            raise _EntryError(
                f"embedding size cannot change ({current.embedding_size} -> {want.size}); "
                "use a new key name"
            )
        return [*restore, *described]
    missing = [o for o in current.enum_options if o not in want.values]
    if missing:
        raise _EntryError(
            "enum options are append-only; the document drops "
            + ", ".join(shorten(o, 30) for o in missing)
        )
    added = tuple(v for v in want.values if v not in current.enum_options)
    changes = restore + ([AddEnumOptions(want.key, added)] if added else [])
    if want.indexed != current.indexed:
        changes.append(SetIndexed(want.key, want.indexed))
    return [*changes, *described]


def plan_import(
    state: SchemaState,
    document: Mapping[str, object],
    allow_unknown_keys: bool | None = None,
) -> Evolution:
    """The evolution that makes `state` match `document`, checked under every rule."""
    desired, violations = parse_document(document)
    changes: list[SchemaChange] = []
    origins: list[str] = []
    # In key order: a document arrives as a protobuf Struct, whose map has none, and a
    # version's list of changes (and its audit event) should not depend on the wire.
    for want in sorted(desired, key=lambda w: w.key):
        field = f'document["{want.key}"]'
        try:
            key_changes = _changes_for(state.get(want.key), want)
        except _EntryError as error:
            violations.append(FieldViolation(field, str(error), "document"))
            continue
        changes.extend(key_changes)
        origins.extend([field] * len(key_changes))
    wanted = set(document)
    for definition in sorted(state.active_keys(), key=lambda d: d.key):
        if definition.key not in wanted:
            changes.append(DeleteKey(definition.key))
            origins.append(f'document["{definition.key}"]')
    if allow_unknown_keys is not None:
        changes.append(SetOptions(allow_unknown_keys))
        origins.append("allow_unknown_keys")
    try:
        evolution = apply_changes(state, changes)
    except InvalidSchemaChange as error:
        violations.extend(_relabel(error.violations, origins))
    if violations:
        # Each violation travels in the details (google.rpc.BadRequest), which clients
        # print one per line: listing them here too showed each one twice.
        count = f"{len(violations)} invalid entr{'y' if len(violations) == 1 else 'ies'}"
        raise InvalidSchemaDocument(f"schema document cannot be imported: {count}", violations)
    return evolution


def _relabel(violations: tuple[FieldViolation, ...], origins: list[str]) -> list[FieldViolation]:
    relabelled = []
    for v in violations:
        index = v.field.removeprefix("changes[").removesuffix("]")
        field = origins[int(index)] if index.isdigit() else v.field
        relabelled.append(FieldViolation(field, v.description, v.reason))
    return relabelled
