"""A schema change meets the stored records: measure its impact, then apply it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..domain.impact import DataEffects, ImpactReport, repair_record
from ..domain.query.index import IndexEntry, index_entries, indexed_keys
from ..domain.schema import SchemaState
from ..domain.validator import encode_record
from ..storage import index, records
from ..storage.schemas import SchemaRef

BATCH = 2000


def assess_impact(session: Session, ref: SchemaRef, effects: DataEffects) -> ImpactReport:
    """Count stored records the change makes invalid, and what a hard delete purges."""
    impact = ImpactReport()
    for key in sorted(effects.purge_keys):
        impact.purged_by_key[key] = records.count_with_key(session, ref.id, key)
    if not effects.needs_scan:
        return impact
    checkers = effects.checkers()
    for duid, values in records.scan_records(
        session, ref.id, effects.checks, effects.declared_keys
    ):
        _, invalid = repair_record(values, effects, checkers)
        if invalid:
            impact.add_invalid(duid, invalid)
    return impact


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
