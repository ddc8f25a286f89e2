"""The validator compiler: one schema version becomes a table of per-key checkers."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from types import MappingProxyType

import msgspec
import orjson

from .names import (
    MAX_KEY_LENGTH,
    RESERVED_KEYFRAMES,
    is_valid_key_name,
    key_name_problem,
    shorten,
)
from .query.index import indexed_keys
from .schema import KeyState, KeyType, SchemaState
from .values import (
    Checker,
    ValueViolation,
    check_keyframes,
    check_unknown,
    display,
    value_checker,
)

MAX_RECORD_BYTES = 256 * 1024

_VALUE_KINDS: dict[KeyType, type] = {
    KeyType.VARCHAR: str,
    KeyType.TEXT: str,
    KeyType.DATETIME: str,
    KeyType.UUID: str,
    KeyType.ENUM: str,
    KeyType.NUMBER: float,
    KeyType.BOOLEAN: bool,
}


class Problem(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One violation inside a record. `key` is empty for record-level rules.

    `shown` is the offending value, shortened for display. A msgspec struct, so that a
    bundle's results are stored (idempotency keys) as compact JSON arrays in one call.
    """

    key: str
    rule: str
    message: str
    shown: str = ""

    def describe(self) -> str:
        if not self.key:
            return f"{self.message} (rule: {self.rule})"
        # A valid key is shown whole; a longer (invalid) one is cut.
        return f"key {shorten(self.key, MAX_KEY_LENGTH + 2)}: {self.message} (rule: {self.rule})"


class EncodedRecord(msgspec.Struct, gc=False):  # not frozen, for speed: see domain.bundle
    """A record in storage form: scalar values as JSON text, embeddings as float32 bytes."""

    scalars_json: str
    embeddings: Mapping[str, bytes]
    size: int


_NO_EMBEDDINGS: Mapping[str, bytes] = MappingProxyType({})


def encode_record(values: Mapping[str, object]) -> EncodedRecord:
    """Scalar values as compact JSON and embeddings as float32 bytes, with the stored size."""
    try:
        raw = orjson.dumps(values)  # most records hold no embedding: one C call
    except TypeError:
        return _encode_with_embeddings(values)
    return EncodedRecord(raw.decode(), _NO_EMBEDDINGS, len(raw))


def _encode_with_embeddings(values: Mapping[str, object]) -> EncodedRecord:
    scalars: dict[str, object] = {}
    embeddings: dict[str, bytes] = {}
    size = 0
    for key, value in values.items():
        if type(value) is array:
            raw = value.tobytes()
            embeddings[key] = raw
            size += len(raw) + len(key)
        else:
            scalars[key] = value
    text = orjson.dumps(scalars)
    return EncodedRecord(text.decode(), embeddings, size + len(text))


def record_size_problem(size: int) -> Problem | None:
    if size <= MAX_RECORD_BYTES:
        return None
    return Problem(
        "",
        "record_size",
        f"record is {size} bytes when stored; the limit is {MAX_RECORD_BYTES} bytes (256 KiB)",
    )


class CompiledValidator:
    """Checks decoded records against one immutable schema version."""

    def __init__(self, schema_name: str, version: int, state: SchemaState) -> None:
        self.schema_name = schema_name
        self.version = version
        self.state = state
        self.allow_unknown_keys = state.allow_unknown_keys
        self._checkers: dict[str, Checker] = {RESERVED_KEYFRAMES: check_keyframes}
        self._coercing: dict[str, Checker] = {RESERVED_KEYFRAMES: check_keyframes}
        self._blocked: dict[str, str] = {}
        for definition in state:
            if definition.active:
                self._checkers[definition.key] = value_checker(definition)
                self._coercing[definition.key] = value_checker(definition, coerce_strings=True)
            elif definition.state is KeyState.SOFT_DELETED:
                self._blocked[definition.key] = (
                    "key is soft-deleted; writes are rejected until it is restored"
                )
            else:
                self._blocked[definition.key] = (
                    "key was hard-deleted; its name is reserved and cannot be written"
                )
        self.hidden_keys = frozenset(d.key for d in state if d.state is KeyState.SOFT_DELETED)
        # The Python type each active scalar key's values decode to: hints for reading
        # the typed form's Values (api.convert.value_readers).
        self.value_kinds: Mapping[str, type] = MappingProxyType(
            {d.key: _VALUE_KINDS[d.type] for d in state if d.active and d.type in _VALUE_KINDS}
        )
        self.indexed = indexed_keys(state)
        # Keys every record must hold once an update is applied (see bundle.missing_required).
        self.required: tuple[str, ...] = tuple(d.key for d in state if d.required)

    def check(
        self, values: Mapping[str, object], *, coerce_strings: bool = False
    ) -> tuple[dict[str, object], list[Problem]]:
        """Normalised values (nulls kept as None) and every problem, sorted by key."""
        checkers = self._coercing if coerce_strings else self._checkers
        normalised: dict[str, object] = {}
        problems: list[Problem] = []
        for key, value in values.items():
            checker = checkers.get(key)
            if checker is None:
                checker = self._checker_for_other(key, value, problems)
                if checker is None:
                    continue
            if value is None:
                normalised[key] = None
                continue
            try:
                normalised[key] = checker(value)
            except ValueViolation as violation:
                problems.append(Problem(key, violation.rule, str(violation), display(value)))
        if len(problems) > 1:
            problems.sort(key=lambda p: p.key)
        return normalised, problems

    def _checker_for_other(
        self, key: str, value: object, problems: list[Problem]
    ) -> Checker | None:
        blocked = self._blocked.get(key)
        if blocked is not None:
            problems.append(Problem(key, "deleted_key", blocked, display(value)))
            return None
        if not is_valid_key_name(key):
            problems.append(Problem(key, "key_name", str(key_name_problem(key)), display(value)))
            return None
        if not self.allow_unknown_keys:
            problems.append(
                Problem(key, "unknown_key", "key is not declared in the schema", display(value))
            )
            return None
        return check_unknown

    def visible(self, values: Mapping[str, object]) -> dict[str, object]:
        """A stored record as readers see it: soft-deleted keys hidden."""
        hidden = self.hidden_keys
        if not hidden:
            return dict(values)
        return {k: v for k, v in values.items() if k not in hidden}
