"""Key types, key definitions and immutable schema states."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

VARCHAR_MAX_LENGTH = 8192
ENUM_MAX_OPTIONS = 256
EMBEDDING_MAX_SIZE = 4096
MAX_DECLARED_KEYS = 1024
DESCRIPTION_MAX_LENGTH = 1024
PATTERN_MAX_LENGTH = 1024


class KeyType(enum.StrEnum):
    VARCHAR = "varchar"
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    UUID = "uuid"
    ENUM = "enum"
    EMBEDDING = "embedding"

    @property
    def is_scalar(self) -> bool:
        return self not in (KeyType.ENUM, KeyType.EMBEDDING)

    @property
    def indexable(self) -> bool:
        return self is not KeyType.EMBEDDING

    @property
    def takes_bounds(self) -> bool:
        """Whether minimum and maximum apply to the type's values."""
        return self is KeyType.NUMBER

    @property
    def takes_pattern(self) -> bool:
        return self in (KeyType.VARCHAR, KeyType.TEXT)


TYPE_ALIASES = {"string": KeyType.VARCHAR, "long_string": KeyType.TEXT}
SCALAR_TYPES = tuple(t for t in KeyType if t.is_scalar)


def valid_type_names() -> str:
    names = [t.value for t in KeyType] + [f"{a} (= {t.value})" for a, t in TYPE_ALIASES.items()]
    return ", ".join(names)


def parse_type_name(name: str) -> KeyType | None:
    """The KeyType for a canonical name or alias; None when unknown."""
    lowered = name.strip().lower()
    if lowered in TYPE_ALIASES:
        return TYPE_ALIASES[lowered]
    try:
        return KeyType(lowered)
    except ValueError:
        return None


class KeyState(enum.StrEnum):
    ACTIVE = "active"
    SOFT_DELETED = "soft_deleted"
    HARD_DELETED = "hard_deleted"


def format_bound(number: float) -> str:
    """A bound as people write it: 1 rather than 1.0, and every digit of 0.1234567."""
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


@dataclass(frozen=True, slots=True)
class KeyConstraints:
    """What a key's values must satisfy beyond the type; None and False constrain nothing.

    `minimum` and `maximum` (inclusive) apply to numbers, `pattern` (RE2, searched
    anywhere in the value, as JSON Schema's `pattern`) to varchar and text, and
    `required` to any key: a record must hold it once an update is applied.
    """

    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    required: bool = False

    def __bool__(self) -> bool:
        return self != NO_CONSTRAINTS

    def tighter_than(self, old: KeyConstraints) -> bool:
        """Whether some value `old` accepts may break these constraints' value rules.

        A pattern is compared as text: whether one regular expression accepts less
        than another is not worth deciding, so any other pattern counts as tighter.
        `required` is not a value rule (see `plan_data_effects`).
        """
        if self.minimum is not None and (old.minimum is None or self.minimum > old.minimum):
            return True
        if self.maximum is not None and (old.maximum is None or self.maximum < old.maximum):
            return True
        return self.pattern is not None and self.pattern != old.pattern

    def for_type(self, key_type: KeyType) -> KeyConstraints:
        """These constraints without the ones `key_type` does not take."""
        bounds = key_type.takes_bounds
        return KeyConstraints(
            self.minimum if bounds else None,
            self.maximum if bounds else None,
            self.pattern if key_type.takes_pattern else None,
            self.required,
        )

    def describe(self) -> str:
        """E.g. "minimum 0, maximum 1, required"; empty for no constraint."""
        parts = []
        if self.minimum is not None:
            parts.append(f"minimum {format_bound(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"maximum {format_bound(self.maximum)}")
        if self.pattern is not None:
            parts.append(f"pattern {self.pattern}")
        if self.required:
            parts.append("required")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.minimum is not None:
            data["minimum"] = self.minimum
        if self.maximum is not None:
            data["maximum"] = self.maximum
        if self.pattern is not None:
            data["pattern"] = self.pattern
        if self.required:
            data["required"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyConstraints:
        def number(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        return cls(number("minimum"), number("maximum"), data.get("pattern"),
                   bool(data.get("required", False)))  # fmt: skip


NO_CONSTRAINTS = KeyConstraints()


@dataclass(frozen=True, slots=True)
class KeyDefinition:
    """One declared key: its type, the type's parameters and its lifecycle state."""

    key: str
    type: KeyType
    max_length: int | None = None
    enum_options: tuple[str, ...] = ()
    embedding_size: int | None = None
    state: KeyState = KeyState.ACTIVE
    indexed: bool = False
    constraints: KeyConstraints = NO_CONSTRAINTS
    description: str = ""

    @property
    def required(self) -> bool:
        """Whether records must hold the key now: a deleted key takes no writes."""
        return self.constraints.required and self.state is KeyState.ACTIVE

    @property
    def active(self) -> bool:
        return self.state is KeyState.ACTIVE

    def with_state(self, state: KeyState) -> KeyDefinition:
        return replace(self, state=state)

    def same_type(self, other: KeyDefinition) -> bool:
        return (self.type, self.max_length, self.enum_options, self.embedding_size) == (
            other.type,
            other.max_length,
            other.enum_options,
            other.embedding_size,
        )

    def describe_type(self) -> str:
        if self.type is KeyType.VARCHAR:
            return f"varchar({self.max_length})"
        if self.type is KeyType.EMBEDDING:
            return f"embedding({self.embedding_size})"
        if self.type is KeyType.ENUM:
            return "enum(" + ", ".join(self.enum_options) + ")"
        return self.type.value

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type.value, "state": self.state.value}
        if self.max_length is not None:
            data["max_length"] = self.max_length
        if self.enum_options:
            data["enum_options"] = list(self.enum_options)
        if self.embedding_size is not None:
            data["embedding_size"] = self.embedding_size
        if self.indexed:
            data["indexed"] = True
        if self.constraints:
            data["constraints"] = self.constraints.to_json()
        if self.description:
            data["description"] = self.description
        return data

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> KeyDefinition:
        return cls(
            key=key,
            type=KeyType(data["type"]),
            max_length=data.get("max_length"),
            enum_options=tuple(data.get("enum_options", ())),
            embedding_size=data.get("embedding_size"),
            state=KeyState(data.get("state", KeyState.ACTIVE.value)),
            indexed=bool(data.get("indexed", False)),
            constraints=KeyConstraints.from_json(data.get("constraints", {})),
            description=str(data.get("description", "")),
        )


@dataclass(frozen=True)
class SchemaState:
    """The full content of one schema version: every declared key and the options."""

    keys: Mapping[str, KeyDefinition] = field(default_factory=dict)
    allow_unknown_keys: bool = False

    def __post_init__(self) -> None:
        ordered = {k: self.keys[k] for k in sorted(self.keys)}
        object.__setattr__(self, "keys", MappingProxyType(ordered))

    def __iter__(self) -> Iterator[KeyDefinition]:
        return iter(self.keys.values())

    def get(self, key: str) -> KeyDefinition | None:
        return self.keys.get(key)

    def active_keys(self) -> list[KeyDefinition]:
        return [k for k in self.keys.values() if k.active]

    def with_key(self, definition: KeyDefinition) -> SchemaState:
        keys = dict(self.keys)
        keys[definition.key] = definition
        return SchemaState(keys, self.allow_unknown_keys)

    def with_allow_unknown_keys(self, allow: bool) -> SchemaState:
        return SchemaState(self.keys, allow)

    def to_json(self) -> dict[str, Any]:
        return {
            "allow_unknown_keys": self.allow_unknown_keys,
            "keys": {k: d.to_json() for k, d in self.keys.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SchemaState:
        keys = {k: KeyDefinition.from_json(k, v) for k, v in data.get("keys", {}).items()}
        return cls(keys, bool(data.get("allow_unknown_keys", False)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchemaState):
            return NotImplemented
        return (
            dict(self.keys) == dict(other.keys)
            and self.allow_unknown_keys == other.allow_unknown_keys
        )

    def __hash__(self) -> int:
        return hash((tuple(self.keys.items()), self.allow_unknown_keys))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """An immutable, numbered version of a named schema."""

    name: str
    version: int
    state: SchemaState
    created_at: datetime | None
    changes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SchemaSummary:
    name: str
    latest_version: int
    active_keys: int
    updated_at: datetime
