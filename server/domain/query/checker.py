"""Type-check a filter against a schema version and normalise its literals."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidQuery
from ..names import RESERVED_KEYFRAMES
from ..schema import KeyDefinition, KeyState, KeyType, SchemaState
from ..values import ValueViolation, check_datetime, check_uuid, describe_kind
from . import syntax

ORDERED_TYPES = (KeyType.VARCHAR, KeyType.TEXT, KeyType.NUMBER, KeyType.DATETIME)
_PREFIX = "metadata."
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    definition: KeyDefinition
    operator: str  # "=", "!=", "<", "<=", ">", ">="
    value: str | float | bool


@dataclass(frozen=True, slots=True)
class Among:
    key: str
    definition: KeyDefinition
    values: frozenset[str | float | bool]


@dataclass(frozen=True, slots=True)
class Present:
    key: str
    definition: KeyDefinition | None  # None for keyframes


@dataclass(frozen=True, slots=True)
class Contains:
    key: str
    definition: KeyDefinition
    needle: str  # already ASCII-lower-cased


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Checked, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Checked, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    item: Checked


Checked = Compare | Among | Present | Contains | AllOf | AnyOf | Negation


@dataclass(frozen=True, slots=True)
class CheckedOrdering:
    key: str
    definition: KeyDefinition
    descending: bool


def resolve_key(state: SchemaState, ref: syntax.KeyRef, *, allow_keyframes: bool = False
                ) -> tuple[str, KeyDefinition | None]:  # fmt: skip
    """The declared key a reference names; the `metadata.` prefix is optional."""
    name = ref.name
    if state.get(name) is None and name.startswith(_PREFIX) and len(name) > len(_PREFIX):
        name = name[len(_PREFIX) :]
    if name == RESERVED_KEYFRAMES and allow_keyframes:
        return name, None
    definition = state.get(name)
    if definition is None:
        detail = "; only EXISTS applies to keyframes" if name == RESERVED_KEYFRAMES else ""
        raise InvalidQuery(ref.column, f'schema has no key "{name}"{detail}')
    if definition.state is KeyState.SOFT_DELETED:
        raise InvalidQuery(ref.column, f'key "{name}" is soft-deleted; restore it to query it')
    if definition.state is KeyState.HARD_DELETED:
        raise InvalidQuery(ref.column, f'key "{name}" was hard-deleted')
    return name, definition


def _literal(definition: KeyDefinition, key: str, literal: syntax.Literal) -> str | float | bool:
    """The literal in the key's stored form, or a type error at its column."""
    value = literal.value
    kind = definition.type
    expected = {KeyType.NUMBER: float, KeyType.BOOLEAN: bool}.get(kind, str)
    if type(value) is not expected:
        wanted = {float: "a number", bool: "true or false", str: "a string"}[expected]
        raise InvalidQuery(
            literal.column,
            f'key "{key}" has type {definition.describe_type()}; compare it with {wanted}, '
            f"not {describe_kind(value)}",
        )
    try:
        if kind is KeyType.DATETIME:
            return str(check_datetime(value))
        if kind is KeyType.UUID:
            return str(check_uuid(value))
    except ValueViolation as violation:
        raise InvalidQuery(literal.column, str(violation)) from None
    if kind is KeyType.ENUM and value not in definition.enum_options:
        options = ", ".join(repr(o) for o in definition.enum_options[:20])
        raise InvalidQuery(literal.column, f'{value!r} is not an option of enum "{key}": {options}')
    return value


def _check_comparison(state: SchemaState, node: syntax.Comparison) -> Checked:
    key, definition = resolve_key(state, node.key)
    assert definition is not None
    if definition.type is KeyType.EMBEDDING:
        raise InvalidQuery(node.key.column, f'embedding key "{key}" supports only EXISTS')
    if node.operator == "~":
        if definition.type not in (KeyType.VARCHAR, KeyType.TEXT):
            raise InvalidQuery(
                node.operator_column,
                f'~ (contains) applies to varchar and text keys; "{key}" is '
                f"{definition.type.value}",
            )
        if not isinstance(node.literal.value, str):
            raise InvalidQuery(node.literal.column, "~ needs a string to look for")
        return Contains(key, definition, ascii_lower(node.literal.value))
    if node.operator in ("<", "<=", ">", ">=") and definition.type not in ORDERED_TYPES:
        raise InvalidQuery(
            node.operator_column,
            f'{node.operator} does not apply to {definition.type.value} key "{key}"; '
            "use =, != or IN",
        )
    return Compare(key, definition, node.operator, _literal(definition, key, node.literal))


def check_filter(state: SchemaState, node: syntax.Node | None) -> Checked | None:
    if node is None:
        return None
    match node:
        case syntax.Comparison():
            return _check_comparison(state, node)
        case syntax.In():
            key, definition = resolve_key(state, node.key)
            assert definition is not None
            if definition.type is KeyType.EMBEDDING:
                raise InvalidQuery(node.key.column, f'embedding key "{key}" supports only EXISTS')
            values = frozenset(_literal(definition, key, lit) for lit in node.literals)
            return Among(key, definition, values)
        case syntax.Exists():
            key, maybe = resolve_key(state, node.key, allow_keyframes=True)
            return Present(key, maybe)
        case syntax.And():
            return AllOf(tuple(_required(state, item) for item in node.items))
        case syntax.Or():
            return AnyOf(tuple(_required(state, item) for item in node.items))
        case syntax.Not():
            return Negation(_required(state, node.item))
    raise AssertionError(node)  # pragma: no cover


def _required(state: SchemaState, node: syntax.Node) -> Checked:
    checked = check_filter(state, node)
    assert checked is not None
    return checked


def check_ordering(state: SchemaState, ordering: syntax.Ordering | None) -> CheckedOrdering | None:
    if ordering is None:
        return None
    try:
        key, definition = resolve_key(state, ordering.key)
    except InvalidQuery as error:
        raise error.for_field("order_by") from None
    assert definition is not None
    if definition.type not in (*ORDERED_TYPES, KeyType.BOOLEAN):
        raise InvalidQuery(
            ordering.key.column,
            f'cannot order by {definition.type.value} key "{key}"',
            "order_by",
        )
    return CheckedOrdering(key, definition, ordering.descending)


def compile_filter(state: SchemaState, source: str) -> Checked | None:
    return check_filter(state, syntax.parse_filter(source))


def compile_ordering(state: SchemaState, source: str) -> CheckedOrdering | None:
    try:
        parsed = syntax.parse_ordering(source)
    except InvalidQuery as error:
        raise error.for_field("order_by") from None
    return check_ordering(state, parsed)
