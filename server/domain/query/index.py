"""Index entries of stored values, and the index ranges a filter can be answered from.

An indexed key has one entry per record that holds it: numbers and booleans in
the number table, every other type in the string table. String entries keep the
first INDEX_PREFIX characters, so a range over them can return extra records;
the planner therefore re-checks every candidate against the whole filter.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..schema import KeyDefinition, KeyState, KeyType, SchemaState
from .checker import AllOf, Among, AnyOf, Checked, Compare, Present

INDEX_PREFIX = 256


class IndexTable(enum.StrEnum):
    NUMBER = "number"
    STRING = "string"


IndexValue = float | str
IndexEntry = tuple[IndexTable, str, IndexValue]


def table_for(definition: KeyDefinition) -> IndexTable:
    if definition.type in (KeyType.NUMBER, KeyType.BOOLEAN):
        return IndexTable.NUMBER
    return IndexTable.STRING


def index_value(value: object) -> IndexValue:
    """A stored value as its index entry (booleans as 0/1, strings cut to the prefix)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    assert isinstance(value, str)
    return value[:INDEX_PREFIX]


def indexed_keys(state: SchemaState) -> dict[str, KeyDefinition]:
    """Keys whose values are indexed (hidden soft-deleted ones included: a restore is free)."""
    return {d.key: d for d in state if d.indexed and d.state is not KeyState.HARD_DELETED}


def index_entries(
    values: Mapping[str, object], indexed: Mapping[str, KeyDefinition]
) -> set[IndexEntry]:
    if not indexed:
        return set()
    return {
        (table_for(definition), key, index_value(values[key]))
        for key, definition in indexed.items()
        if key in values and values[key] is not None
    }


@dataclass(frozen=True, slots=True)
class IndexRange:
    """Entries of one key between two bounds (None = unbounded)."""

    table: IndexTable
    key: str
    low: IndexValue | None = None
    low_inclusive: bool = True
    high: IndexValue | None = None
    high_inclusive: bool = True

    @property
    def is_point(self) -> bool:
        return (
            self.low is not None
            and self.low == self.high
            and self.low_inclusive
            and self.high_inclusive
        )


@dataclass(frozen=True, slots=True)
class Driver:
    """Index ranges whose union holds every record a filter can match.

    `exact` is true when the ranges hold exactly the matching records (no string
    was cut to the prefix), so a count needs no re-check.
    """

    ranges: tuple[IndexRange, ...]
    exact: bool


def _bound(value: str | float | bool) -> tuple[IndexValue, bool]:
    """The indexed form of a literal, and whether it is exact (not cut)."""
    if isinstance(value, str):
        return value[:INDEX_PREFIX], len(value) < INDEX_PREFIX
    return index_value(value), True


def _compare_driver(node: Compare) -> Driver | None:
    if node.operator == "!=":
        return None
    table = table_for(node.definition)
    bound, exact = _bound(node.value)
    key = node.key
    if node.operator == "=":
        return Driver((IndexRange(table, key, bound, True, bound, True),), exact)
    if node.operator in (">", ">="):
        # A cut bound must include equal prefixes: longer strings may be greater.
        inclusive = node.operator == ">=" or not exact
        return Driver((IndexRange(table, key, low=bound, low_inclusive=inclusive),), exact)
    inclusive = node.operator == "<=" or not exact
    return Driver((IndexRange(table, key, high=bound, high_inclusive=inclusive),), exact)


def driver_for(node: Checked, indexed: Mapping[str, KeyDefinition]) -> Driver | None:
    """Index ranges covering the records `node` can match, if its keys are indexed."""
    match node:
        case Compare() if node.key in indexed:
            return _compare_driver(node)
        case Among() if node.key in indexed:
            table = table_for(node.definition)
            bounds = [_bound(v) for v in sorted(node.values, key=repr)]
            ranges = tuple(IndexRange(table, node.key, b, True, b, True) for b, _ in bounds)
            return Driver(ranges, all(exact for _, exact in bounds))
        case Present(definition=definition) if definition and node.key in indexed:
            return Driver((IndexRange(table_for(definition), node.key),), True)
        case AnyOf(items=items):
            parts = [driver_for(item, indexed) for item in items]
            if any(part is None for part in parts):
                return None
            ranges = tuple(r for part in parts if part for r in part.ranges)
            return Driver(ranges, False)  # a record may sit in several ranges
    return None


def conjuncts(node: Checked | None) -> list[Checked]:
    if node is None:
        return []
    if isinstance(node, AllOf):
        return [c for item in node.items for c in conjuncts(item)]
    return [node]


def _intersect(parts: list[Compare]) -> Driver:
    """One range satisfying every comparison in `parts` (all on one key, so one type)."""
    low: Any = None
    high: Any = None
    low_inclusive = high_inclusive = True
    exact = True
    for part in parts:
        driver = _compare_driver(part)
        assert driver is not None
        (bounds,) = driver.ranges
        exact = exact and driver.exact
        if bounds.low is not None and (
            low is None or bounds.low > low or (bounds.low == low and not bounds.low_inclusive)
        ):
            low, low_inclusive = bounds.low, bounds.low_inclusive
        if bounds.high is not None and (
            high is None
            or bounds.high < high
            or (bounds.high == high and not bounds.high_inclusive)
        ):
            high, high_inclusive = bounds.high, bounds.high_inclusive
    key, table = parts[0].key, table_for(parts[0].definition)
    return Driver((IndexRange(table, key, low, low_inclusive, high, high_inclusive),), exact)


def _drivers(node: Checked | None, indexed: Mapping[str, KeyDefinition]
             ) -> list[tuple[Driver, int]]:  # fmt: skip
    """Each index-answerable part of the top-level AND, with how many conjuncts it covers.

    Range comparisons on one key are intersected into one range (`q >= 50 AND q < 60`).
    """
    drivers: list[tuple[Driver, int]] = []
    ranges: dict[str, list[Compare]] = {}
    for part in conjuncts(node):
        if isinstance(part, Compare) and part.key in indexed and part.operator != "!=":
            ranges.setdefault(part.key, []).append(part)
            continue
        driver = driver_for(part, indexed)
        if driver is not None:
            drivers.append((driver, 1))
    drivers += [(_intersect(group), len(group)) for group in ranges.values()]
    return drivers


def candidate_drivers(node: Checked | None, indexed: Mapping[str, KeyDefinition]) -> list[Driver]:
    """Index ranges that each bound the matches of the whole filter."""
    return [driver for driver, _ in _drivers(node, indexed)]


def key_range(node: Checked | None, key: str, indexed: Mapping[str, KeyDefinition]
              ) -> IndexRange | None:  # fmt: skip
    """The range the filter's top-level comparisons allow for `key`, if they limit it."""
    for driver, _ in _drivers(node, indexed):
        if len(driver.ranges) == 1 and driver.ranges[0].key == key:
            return driver.ranges[0]
    return None


def single_exact_driver(node: Checked | None, indexed: Mapping[str, KeyDefinition]
                        ) -> Driver | None:  # fmt: skip
    """The driver when it alone decides the filter (a count can then use the index only)."""
    drivers = _drivers(node, indexed)
    if len(drivers) != 1:
        return None
    driver, covered = drivers[0]
    # Ranges from IN are disjoint points, so their counts add up.
    return driver if driver.exact and covered == len(conjuncts(node)) else None
