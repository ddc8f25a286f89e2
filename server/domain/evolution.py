"""Schema evolution: apply a list of changes to a schema state under the key rules."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .errors import FieldViolation, InvalidSchemaChange
from .names import enum_option_problem, key_name_problem, shorten
from .patterns import pattern_problem
from .schema import (
    DESCRIPTION_MAX_LENGTH,
    EMBEDDING_MAX_SIZE,
    ENUM_MAX_OPTIONS,
    MAX_DECLARED_KEYS,
    NO_CONSTRAINTS,
    VARCHAR_MAX_LENGTH,
    KeyConstraints,
    KeyDefinition,
    KeyState,
    KeyType,
    SchemaState,
    format_bound,
    parse_type_name,
    valid_type_names,
)


@dataclass(frozen=True, slots=True)
class AddScalar:
    key: str
    type: str
    max_length: int | None = None
    indexed: bool = False
    constraints: KeyConstraints = NO_CONSTRAINTS
    description: str = ""


@dataclass(frozen=True, slots=True)
class SetScalar:
    key: str
    type: str
    max_length: int | None = None
    # None keeps the key's current indexing.
    indexed: bool | None = None


@dataclass(frozen=True, slots=True)
class AddEnum:
    key: str
    values: tuple[str, ...]
    indexed: bool = False
    constraints: KeyConstraints = NO_CONSTRAINTS
    description: str = ""


@dataclass(frozen=True, slots=True)
class AddEnumOptions:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddEmbedding:
    key: str
    size: int
    constraints: KeyConstraints = NO_CONSTRAINTS
    description: str = ""


@dataclass(frozen=True, slots=True)
class DeleteKey:
    key: str
    hard: bool = False


@dataclass(frozen=True, slots=True)
class RestoreKey:
    key: str


@dataclass(frozen=True, slots=True)
class SetOptions:
    allow_unknown_keys: bool | None = None


@dataclass(frozen=True, slots=True)
class SetIndexed:
    key: str
    indexed: bool


@dataclass(frozen=True, slots=True)
class SetConstraints:
    """The key's constraints become exactly these."""

    key: str
    constraints: KeyConstraints


@dataclass(frozen=True, slots=True)
class SetDescription:
    key: str
    description: str


SchemaChange = (
    AddScalar
    | SetScalar
    | AddEnum
    | AddEnumOptions
    | AddEmbedding
    | DeleteKey
    | RestoreKey
    | SetOptions
    | SetIndexed
    | SetConstraints
    | SetDescription
)


class ChangeRejected(Exception):
    """One change breaks a rule; collected into InvalidSchemaChange."""


@dataclass(frozen=True)
class Evolution:
    """The outcome of applying changes: the new state and what each change did."""

    before: SchemaState
    after: SchemaState
    applied: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.after != self.before


def apply_changes(state: SchemaState, changes: Sequence[SchemaChange]) -> Evolution:
    """Apply `changes` in order. Raises InvalidSchemaChange listing every bad change.

    A change that fails is skipped so later changes are still checked; a later
    change that depends on a failed one may then be reported as well.
    """
    current = state
    applied: list[str] = []
    violations: list[FieldViolation] = []
    for index, change in enumerate(changes):
        try:
            result = _apply_one(current, change)
        except ChangeRejected as rejected:
            violations.append(FieldViolation(f"changes[{index}]", str(rejected), "schema_rule"))
            continue
        if result is not None:
            current, summary = result
            applied.append(summary)
    if violations:
        raise InvalidSchemaChange.from_violations(violations)
    declared = len(current.keys)
    if declared > MAX_DECLARED_KEYS:
        raise InvalidSchemaChange.from_violations(
            [
                FieldViolation(
                    "changes",
                    f"a schema declares at most {MAX_DECLARED_KEYS} keys "
                    f"(deleted keys included); these changes make {declared}",
                    "schema_rule",
                )
            ]
        )
    return Evolution(state, current, tuple(applied))


def _apply_one(state: SchemaState, change: SchemaChange) -> tuple[SchemaState, str] | None:
    match change:
        case AddScalar():
            return _add_scalar(state, change)
        case SetScalar():
            return _set_scalar(state, change)
        case AddEnum():
            return _add_enum(state, change)
        case AddEnumOptions():
            return _add_enum_options(state, change)
        case AddEmbedding():
            return _add_embedding(state, change)
        case DeleteKey():
            return _delete_key(state, change)
        case RestoreKey():
            return _restore_key(state, change)
        case SetOptions():
            return _set_options(state, change)
        case SetIndexed():
            return _set_indexed(state, change)
        case SetConstraints():
            return _set_constraints(state, change)
        case SetDescription():
            return _set_description(state, change)
    raise ChangeRejected(f"unknown change {change!r}")  # pragma: no cover


def _require_new_key(state: SchemaState, key: str) -> None:
    problem = key_name_problem(key)
    if problem:
        raise ChangeRejected(problem)
    existing = state.get(key)
    if existing is None:
        return
    if existing.state is KeyState.HARD_DELETED:
        raise ChangeRejected(
            f'key "{key}" was hard-deleted; its name is reserved forever and cannot be reused'
        )
    if existing.state is KeyState.SOFT_DELETED:
        raise ChangeRejected(
            f'key "{key}" already exists (soft-deleted, {existing.describe_type()}); '
            "use restore_key, or set_scalar to restore it with another scalar type"
        )
    raise ChangeRejected(f'key "{key}" already exists ({existing.describe_type()})')


def _require_existing(state: SchemaState, key: str) -> KeyDefinition:
    existing = state.get(key)
    if existing is None:
        raise ChangeRejected(f'schema has no key "{key}"')
    return existing


def _scalar_definition(key: str, type_name: str, max_length: int | None) -> KeyDefinition:
    key_type = parse_type_name(type_name)
    if key_type is None:
        raise ChangeRejected(
            f'unknown type {shorten(type_name)} for key "{key}"; valid types: {valid_type_names()}'
        )
    if key_type is KeyType.ENUM:
        raise ChangeRejected(f'key "{key}": enum keys are declared with add_enum and their values')
    if key_type is KeyType.EMBEDDING:
        raise ChangeRejected(f'key "{key}": embedding keys are declared with add_embedding')
    if key_type is not KeyType.VARCHAR:
        if max_length is not None:
            raise ChangeRejected(
                f'key "{key}": max_length applies only to varchar, not {key_type.value}'
            )
        return KeyDefinition(key, key_type)
    length = VARCHAR_MAX_LENGTH if max_length is None else max_length
    if not 1 <= length <= VARCHAR_MAX_LENGTH:
        raise ChangeRejected(
            f'key "{key}": varchar max_length {length} is out of range 1..{VARCHAR_MAX_LENGTH}'
        )
    return KeyDefinition(key, key_type, max_length=length)


def _add_scalar(state: SchemaState, change: AddScalar) -> tuple[SchemaState, str]:
    _require_new_key(state, change.key)
    definition = _scalar_definition(change.key, change.type, change.max_length)
    definition = _described(
        replace(definition, indexed=change.indexed), change.constraints, change.description
    )
    return state.with_key(definition), (
        f"add_scalar {change.key} {definition.describe_type()}{_indexed_note(definition)}"
        f"{_constraints_note(definition)}"
    )


def _indexed_note(definition: KeyDefinition) -> str:
    return " (indexed)" if definition.indexed else ""


def _constraints_note(definition: KeyDefinition) -> str:
    return f" [{definition.constraints.describe()}]" if definition.constraints else ""


def _described(
    definition: KeyDefinition, constraints: KeyConstraints, description: str
) -> KeyDefinition:
    """`definition` with checked constraints and description (ChangeRejected if bad)."""
    return replace(
        definition,
        constraints=_checked_constraints(definition, constraints),
        description=_checked_description(definition.key, description),
    )


def _checked_constraints(definition: KeyDefinition, constraints: KeyConstraints) -> KeyConstraints:
    key, key_type = definition.key, definition.type
    bounds = {"minimum": constraints.minimum, "maximum": constraints.maximum}
    for name, bound in bounds.items():
        if bound is None:
            continue
        if not key_type.takes_bounds:
            raise ChangeRejected(
                f'key "{key}": {name} applies only to number, not {key_type.value}'
            )
        if not math.isfinite(bound):
            raise ChangeRejected(f'key "{key}": {name} must be a finite number, not {bound!r}')
    low, high = constraints.minimum, constraints.maximum
    if low is not None and high is not None and low > high:
        raise ChangeRejected(
            f'key "{key}": minimum {format_bound(low)} is above maximum {format_bound(high)}'
        )
    if constraints.pattern is not None:
        if not key_type.takes_pattern:
            raise ChangeRejected(
                f'key "{key}": pattern applies only to varchar and text, not {key_type.value}'
            )
        problem = pattern_problem(constraints.pattern)
        if problem:
            raise ChangeRejected(f'key "{key}": {problem}')
    # -0.0 is stored as 0.0, as number values are (PostgreSQL's JSON has no -0).
    return replace(
        constraints,
        minimum=None if low is None else low + 0.0,
        maximum=None if high is None else high + 0.0,
    )


def _checked_description(key: str, description: str) -> str:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ChangeRejected(
            f'key "{key}": description is {len(description)} characters long; '
            f"the limit is {DESCRIPTION_MAX_LENGTH}"
        )
    bad = _DESCRIPTION_CONTROL.search(description)
    if bad:
        raise ChangeRejected(
            f'key "{key}": description contains the control character U+{ord(bad.group()):04X}; '
            "only tab and newline are allowed"
        )
    return description


_DESCRIPTION_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _set_scalar(state: SchemaState, change: SetScalar) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    if existing.state is KeyState.HARD_DELETED:
        raise ChangeRejected(f'key "{change.key}" was hard-deleted and cannot be changed')
    if not existing.type.is_scalar:
        raise ChangeRejected(
            f'key "{change.key}" is an {existing.type.value} key; '
            f"{existing.type.value} keys cannot change type"
        )
    definition = _scalar_definition(change.key, change.type, change.max_length)
    indexed = existing.indexed if change.indexed is None else change.indexed
    kept = existing.constraints.for_type(definition.type)
    definition = replace(
        definition, indexed=indexed, constraints=kept, description=existing.description
    )
    if existing.active and existing.same_type(definition) and existing.indexed == indexed:
        return None
    if existing.active and existing.same_type(definition):
        summary = f"{'index' if indexed else 'unindex'} {change.key}"
    else:
        verb = "set_scalar" if existing.active else "set_scalar (restoring)"
        target = definition.describe_type() + _indexed_note(definition)
        if existing.same_type(definition):
            summary = f"{verb} {change.key} {target}"
        else:
            summary = f"{verb} {change.key} {existing.describe_type()} -> {target}"
        dropped = _dropped(existing.constraints, kept)
        if dropped:
            summary += f" (drops {dropped}, which {definition.type.value} does not take)"
    return state.with_key(definition), summary


def _dropped(before: KeyConstraints, after: KeyConstraints) -> str:
    names = [
        name
        for name in ("minimum", "maximum", "pattern")
        if getattr(before, name) is not None and getattr(after, name) is None
    ]
    return ", ".join(names)


def _enum_options_problem(key: str, values: Sequence[str], existing: Sequence[str]) -> str | None:
    for value in values:
        problem = enum_option_problem(value)
        if problem:
            return f'key "{key}": {problem}'
    seen: set[str] = set(existing)
    for value in values:
        if value in seen:
            where = "is already an option" if value in existing else "is listed twice"
            return f'key "{key}": enum option {shorten(value)} {where}'
        seen.add(value)
    total = len(existing) + len(values)
    if total > ENUM_MAX_OPTIONS:
        return (
            f'key "{key}": an enum has at most {ENUM_MAX_OPTIONS} options; this would make {total}'
        )
    return None


def _add_enum(state: SchemaState, change: AddEnum) -> tuple[SchemaState, str]:
    _require_new_key(state, change.key)
    if not change.values:
        raise ChangeRejected(f'key "{change.key}": an enum needs at least one option')
    problem = _enum_options_problem(change.key, change.values, ())
    if problem:
        raise ChangeRejected(problem)
    definition = KeyDefinition(
        change.key, KeyType.ENUM, enum_options=tuple(change.values), indexed=change.indexed
    )
    definition = _described(definition, change.constraints, change.description)
    return state.with_key(definition), (
        f"add_enum {change.key} ({len(change.values)} options){_indexed_note(definition)}"
        f"{_constraints_note(definition)}"
    )


def _add_enum_options(state: SchemaState, change: AddEnumOptions) -> tuple[SchemaState, str]:
    existing = _require_existing(state, change.key)
    if existing.type is not KeyType.ENUM:
        raise ChangeRejected(f'key "{change.key}" is {existing.describe_type()}, not an enum')
    if not existing.active:
        raise ChangeRejected(
            f'key "{change.key}" is {existing.state.value.replace("_", "-")}; restore it first'
        )
    if not change.values:
        raise ChangeRejected(f'key "{change.key}": add_enum_options needs at least one option')
    problem = _enum_options_problem(change.key, change.values, existing.enum_options)
    if problem:
        raise ChangeRejected(problem)
    definition = replace(existing, enum_options=existing.enum_options + tuple(change.values))
    added = ", ".join(change.values)
    return state.with_key(definition), f"add_enum_options {change.key} +[{added}]"


def _add_embedding(state: SchemaState, change: AddEmbedding) -> tuple[SchemaState, str]:
    _require_new_key(state, change.key)
    if not 1 <= change.size <= EMBEDDING_MAX_SIZE:
        raise ChangeRejected(
            f'key "{change.key}": embedding size {change.size} is out of range '
            f"1..{EMBEDDING_MAX_SIZE}"
        )
    definition = KeyDefinition(change.key, KeyType.EMBEDDING, embedding_size=change.size)
    definition = _described(definition, change.constraints, change.description)
    return state.with_key(definition), (
        f"add_embedding {change.key} {change.size}{_constraints_note(definition)}"
    )


def _delete_key(state: SchemaState, change: DeleteKey) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    target = KeyState.HARD_DELETED if change.hard else KeyState.SOFT_DELETED
    if existing.state is KeyState.HARD_DELETED:
        return None
    if existing.state is target:
        return None
    kind = "hard" if change.hard else "soft"
    return state.with_key(existing.with_state(target)), f"delete_key {change.key} ({kind})"


def _restore_key(state: SchemaState, change: RestoreKey) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    if existing.state is KeyState.HARD_DELETED:
        raise ChangeRejected(
            f'key "{change.key}" was hard-deleted; its values are gone and it cannot be restored'
        )
    if existing.active:
        return None
    return state.with_key(existing.with_state(KeyState.ACTIVE)), f"restore_key {change.key}"


def _set_options(state: SchemaState, change: SetOptions) -> tuple[SchemaState, str] | None:
    allow = change.allow_unknown_keys
    if allow is None or allow == state.allow_unknown_keys:
        return None
    return state.with_allow_unknown_keys(allow), f"set_options allow_unknown_keys={allow}"


def _set_indexed(state: SchemaState, change: SetIndexed) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    if not existing.type.indexable:
        raise ChangeRejected(f'key "{change.key}": embedding keys cannot be indexed')
    if not existing.active:
        raise ChangeRejected(
            f'key "{change.key}" is {existing.state.value.replace("_", "-")}; restore it first'
        )
    if existing.indexed == change.indexed:
        return None
    verb = "index" if change.indexed else "unindex"
    return state.with_key(replace(existing, indexed=change.indexed)), f"{verb} {change.key}"


def _set_constraints(state: SchemaState, change: SetConstraints) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    if not existing.active:
        raise ChangeRejected(
            f'key "{change.key}" is {existing.state.value.replace("_", "-")}; restore it first'
        )
    constraints = _checked_constraints(existing, change.constraints)
    if constraints == existing.constraints:
        return None
    summary = constraints.describe() or "none"
    return state.with_key(replace(existing, constraints=constraints)), (
        f"set_constraints {change.key} [{summary}]"
    )


def _set_description(state: SchemaState, change: SetDescription) -> tuple[SchemaState, str] | None:
    existing = _require_existing(state, change.key)
    if existing.state is KeyState.HARD_DELETED:
        raise ChangeRejected(f'key "{change.key}" was hard-deleted and cannot be changed')
    description = _checked_description(change.key, change.description)
    if description == existing.description:
        return None
    verb = "set_description" if description else "remove_description"
    return state.with_key(replace(existing, description=description)), f"{verb} {change.key}"
