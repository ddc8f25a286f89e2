"""A schema change meets the stored records: measure its impact, then apply it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy.orm import Session

from ..domain.impact import DataEffects, ImpactReport, repair_record
from ..domain.query.index import IndexEntry, index_entries, indexed_keys
from ..domain.schema import KeyType, SchemaState
from ..domain.validator import encode_record
from ..storage import index, records
from ..storage.schemas import SchemaRef

BATCH = 2000


def assess_impact(
    session: Session, ref: SchemaRef, effects: DataEffects, after: SchemaState
) -> ImpactReport:
    """Count stored records the change makes invalid, and what a hard delete purges.

    A record is invalid when it holds a value the new version rejects or lacks a key
    that just became required; both scans go in data_unit_id order, so each record is
    counted once without holding either list in memory.
    """
    impact = ImpactReport()
    for key in sorted(effects.purge_keys):
        impact.purged_by_key[key] = records.count_with_key(session, ref.id, key)
    embedded = {key: after.keys[key].type is KeyType.EMBEDDING for key in effects.required}
    lacking = records.scan_lacking(session, ref.id, embedded) if embedded else iter(())
    for duid, invalid, missing in _merge_by_id(_invalid_values(session, ref, effects), lacking):
        # A required key whose invalid value force would remove is then missing too.
        gone = {k for k in invalid if k in after.keys and after.keys[k].required}
        impact.add_invalid(duid, invalid, sorted(set(missing) | gone))
    return impact


def _invalid_values(
    session: Session, ref: SchemaRef, effects: DataEffects
) -> Iterator[tuple[str, list[str]]]:
    """(data_unit_id, keys of its values the new version rejects), in id order."""
    if not effects.needs_scan:
        return
    checkers = effects.checkers()
    for duid, values in records.scan_records(
        session, ref.id, effects.checks, effects.declared_keys
    ):
        _, invalid = repair_record(values, effects, checkers)
        if invalid:
            yield duid, invalid


def _merge_by_id(
    invalid: Iterator[tuple[str, list[str]]], lacking: Iterator[tuple[str, list[str]]]
) -> Iterator[tuple[str, list[str], list[str]]]:
    """(data_unit_id, invalid keys, missing keys) from two streams sorted by id (both
    databases order ids by code point, as Python compares them)."""
    left, right = next(invalid, None), next(lacking, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left[0] < right[0]):
            assert left is not None
            yield left[0], left[1], []
            left = next(invalid, None)
        elif left is None or right[0] < left[0]:
            yield right[0], [], right[1]
            right = next(lacking, None)
        else:
            yield left[0], left[1], right[1]
            left, right = next(invalid, None), next(lacking, None)


def apply_effects(
    session: Session,
    ref: SchemaRef,
    effects: DataEffects,
    after: SchemaState,
    now: datetime,
    version: int,
) -> None:
    """Purge hard-deleted keys, repair values, then bring the query index up to date."""
    for key in sorted(effects.purge_keys):
        records.purge_key(session, ref.id, key, now, version)
    if effects.needs_scan:
        _repair(session, ref, effects, now, version)
    _reindex(session, ref, effects, after)


def _repair(
    session: Session, ref: SchemaRef, effects: DataEffects, now: datetime, version: int
) -> None:
    """Drop values the new version rejects and rewrite valid ones in its normal form."""
    checkers = effects.checkers()
    batch: list[tuple[str, str]] = []
    for duid, values in records.scan_records(
        session, ref.id, effects.checks, effects.declared_keys
    ):
        repaired, _ = repair_record(values, effects, checkers)
        if repaired is not None:
            batch.append((duid, encode_record(repaired).scalars_json))
        if len(batch) >= BATCH:
            records.rewrite_scalars(session, ref.id, batch, now, version)
            batch = []
    records.rewrite_scalars(session, ref.id, batch, now, version)


def _reindex(session: Session, ref: SchemaRef, effects: DataEffects, after: SchemaState) -> None:
    """Drop entries of keys no longer indexed (or retyped) and build the new ones."""
    for key in sorted(effects.unindex | effects.reindex):
        index.drop_key(session, ref.id, key)
    indexed = indexed_keys(after)
    for key in sorted(effects.reindex):
        only = {key: indexed[key]}
        batch: list[tuple[str, IndexEntry]] = []
        for duid, values in records.scan_records(session, ref.id, [key], None):
            batch.extend((duid, entry) for entry in index_entries(values, only))
            if len(batch) >= BATCH:
                index.add_entries(session, ref.id, batch)
                batch = []
        index.add_entries(session, ref.id, batch)
