"""What a schema change does to stored records: which values to re-check or purge."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .names import RESERVED_KEYFRAMES
from .schema import KeyDefinition, KeyState, SchemaState
from .values import Checker, ValueViolation, value_checker

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class DataEffects:
    """Stored-data work implied by going from one schema state to the next."""

    # Keys whose stored values must satisfy a new definition: a changed scalar
    # type, or a newly declared key that records may hold as an undeclared key.
    checks: Mapping[str, KeyDefinition] = field(default_factory=dict)
    # Keys that were just hard-deleted: every stored value goes.
    purge_keys: frozenset[str] = frozenset()
    # Set when unknown keys stop being allowed: keys outside it are invalid.
    declared_keys: frozenset[str] | None = None
    # Keys whose query index entries must be dropped, and (re)built from the data.
    unindex: frozenset[str] = frozenset()
    reindex: frozenset[str] = frozenset()
    # Keys that became required (newly declared, marked required, or restored):
    # stored records without them are counted, and never repaired.
    required: frozenset[str] = frozenset()

    @property
    def needs_scan(self) -> bool:
        return bool(self.checks) or self.declared_keys is not None

    def checkers(self) -> dict[str, Checker]:
        return {key: value_checker(d) for key, d in self.checks.items()}


def plan_data_effects(before: SchemaState, after: SchemaState) -> DataEffects:
    checks: dict[str, KeyDefinition] = {}
    purge: set[str] = set()
    required: set[str] = set()
    for definition in after:
        old = before.get(definition.key)
        if definition.state is KeyState.HARD_DELETED:
            if old is None or old.state is not KeyState.HARD_DELETED:
                purge.add(definition.key)
            continue
        if old is None:
            checks[definition.key] = definition
        elif definition.type.is_scalar and not definition.same_type(old):
            # Enum and embedding keys never change type, and appending enum
            # options cannot invalidate a stored value.
            checks[definition.key] = definition
        elif definition.constraints.tighter_than(old.constraints):
            checks[definition.key] = definition
        if definition.required and (old is None or not old.required):
            required.add(definition.key)
    declared = None
    if before.allow_unknown_keys and not after.allow_unknown_keys:
        declared = frozenset(after.keys) | {RESERVED_KEYFRAMES}
    unindex, reindex = _index_effects(before, after, checks)
    return DataEffects(checks, frozenset(purge), declared, unindex, reindex, frozenset(required))


def _index_effects(
    before: SchemaState, after: SchemaState, checks: Mapping[str, KeyDefinition]
) -> tuple[frozenset[str], frozenset[str]]:
    unindex: set[str] = set()
    reindex: set[str] = set()
    for definition in after:
        old = before.get(definition.key)
        live = definition.indexed and definition.state is not KeyState.HARD_DELETED
        if old is not None and old.indexed and not live:
            unindex.add(definition.key)
        if live and (old is None or not old.indexed or definition.key in checks):
            reindex.add(definition.key)
    return frozenset(unindex), frozenset(reindex)


def repair_record(
    values: Mapping[str, object], effects: DataEffects, checkers: Mapping[str, Checker]
) -> tuple[dict[str, object] | None, list[str]]:
    """The record with invalid values removed and valid ones normalised.

    Returns (None, []) when nothing changes, else the repaired values (or None
    if only normalisation was a no-op) and the keys whose values were invalid.
    """
    repaired: dict[str, object] | None = None
    invalid: list[str] = []
    for key, checker in checkers.items():
        if key not in values:
            continue
        try:
            normalised = checker(values[key])
        except ValueViolation:
            invalid.append(key)
            repaired = repaired if repaired is not None else dict(values)
            del repaired[key]
            continue
        if normalised != values[key]:
            repaired = repaired if repaired is not None else dict(values)
            repaired[key] = normalised
    if effects.declared_keys is not None:
        for key in values:
            if key not in effects.declared_keys:
                invalid.append(key)
                repaired = repaired if repaired is not None else dict(values)
                repaired.pop(key, None)
    return repaired, invalid


@dataclass
class ImpactReport:
    """Stored records a schema change makes invalid (and what a hard delete purges)."""

    invalid_records: int = 0
    sample_data_unit_ids: list[str] = field(default_factory=list)
    invalid_by_key: dict[str, int] = field(default_factory=dict)
    purged_by_key: dict[str, int] = field(default_factory=dict)
    # Per required key, the records that would lack it (force leaves them so).
    missing_by_key: dict[str, int] = field(default_factory=dict)

    def add_invalid(self, data_unit_id: str, keys: list[str], missing: Iterable[str] = ()) -> None:
        """One invalid record: the keys of its invalid values, and the required keys it
        would lack."""
        self.invalid_records += 1
        if len(self.sample_data_unit_ids) < SAMPLE_SIZE:
            self.sample_data_unit_ids.append(data_unit_id)
        for key in keys:
            self.invalid_by_key[key] = self.invalid_by_key.get(key, 0) + 1
        for key in missing:
            self.missing_by_key[key] = self.missing_by_key.get(key, 0) + 1

    def describe(self) -> str:
        counts = [
            *(f'"{k}": {n}' for k, n in sorted(self.invalid_by_key.items())),
            *(f'"{k}": {n} missing' for k, n in sorted(self.missing_by_key.items())),
        ]
        samples = ", ".join(self.sample_data_unit_ids)
        return (
            f"{self.invalid_records} stored record(s) would become invalid "
            f"(records per key: {', '.join(counts)}); sample data_unit_ids: {samples}"
        )
