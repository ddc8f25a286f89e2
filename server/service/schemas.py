"""Schema registry use cases: read, list, evolve, import and export schemas."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from ..domain.access import ANONYMOUS, ApiKey, Caller
from ..domain.errors import (
    IncompatibleChange,
    InvalidPageToken,
    SchemaNotFound,
    VersionConflict,
)
from ..domain.evolution import Evolution, SchemaChange, apply_changes
from ..domain.impact import ImpactReport, plan_data_effects
from ..domain.importing import plan_import
from ..domain.json_schema import export_json_schema
from ..domain.names import schema_name_problem
from ..domain.schema import SchemaState, SchemaSummary, SchemaVersion
from ..storage import audit, schemas
from ..storage.database import Database
from ..storage.schemas import SchemaRef
from . import stored_data
from .cache import SchemaCache
from .common import (
    Clock,
    decode_page_token,
    encode_page_token,
    page_size,
    require_schema_name,
    retry_on_conflict,
    utc_now,
)

T = TypeVar("T")


@dataclass(frozen=True)
class SchemaUpdate:
    """The result of UpdateSchema/ImportSchema."""

    schema: SchemaVersion
    impact: ImpactReport
    changed: bool
    applied: tuple[str, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str = ""


class SchemaService:
    def __init__(self, db: Database, cache: SchemaCache, clock: Clock = utc_now) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock

    # --- reads ------------------------------------------------------------

    def get_schema(self, name: str, version: int = 0) -> SchemaVersion:
        """A version (0: the latest), see SchemaCache.read."""
        return self.cache.read(self.db, name, version)[0]

    def export_json_schema(self, schema: SchemaVersion) -> tuple[int, str]:
        """A version (from get_schema) as a JSON Schema document."""
        return schema.version, json.dumps(export_json_schema(schema), indent=2, sort_keys=False)

    def list_schemas(
        self, requested_size: int, token: str, key: ApiKey | None = None
    ) -> Page[SchemaSummary]:
        """Schemas by name; with `key`, only those it covers (the others are skipped over,
        so a page may come back short, but never empty while there are more)."""
        size = page_size(requested_size)
        after = decode_page_token(token, "schemas") or ""
        if type(after) is not str or (after and schema_name_problem(after)):
            raise InvalidPageToken("page_token was not issued for ListSchemas")
        items: list[SchemaSummary] = []
        with self.db.session() as session:
            while True:
                wanted = size + 1 - len(items)
                batch = schemas.list_summaries(session, after, wanted)
                items += [s for s in batch if key is None or key.covers(s.name)]
                if len(items) > size or len(batch) < wanted:
                    break
                after = batch[-1].name
        more = len(items) > size
        items = items[:size]
        return Page(items, encode_page_token("schemas", items[-1].name) if more else "")

    def list_versions(self, name: str, requested_size: int, token: str) -> Page[SchemaVersion]:
        require_schema_name(name)
        size = page_size(requested_size)
        kind = f"versions:{name}"
        with self.db.session() as session:
            ref = self._require_ref(session, name)
            before = decode_page_token(token, kind) or ref.latest_version + 1
            if type(before) is not int or not 1 <= before <= ref.latest_version + 1:
                raise InvalidPageToken(f'page_token was not issued for the versions of "{name}"')
            items = schemas.list_versions(session, ref, before, size + 1)
        more = len(items) > size
        items = items[:size]
        return Page(items, encode_page_token(kind, items[-1].version) if more else "")

    # --- writes -----------------------------------------------------------

    def update_schema(
        self,
        name: str,
        expected_version: int,
        changes: Sequence[SchemaChange],
        *,
        validate_only: bool = False,
        force: bool = False,
        caller: Caller | None = None,
    ) -> SchemaUpdate:
        require_schema_name(name)
        return retry_on_conflict(
            lambda: self._evolve(
                name,
                expected_version,
                lambda state: apply_changes(state, changes),
                validate_only=validate_only,
                force=force,
                caller=caller or Caller(ANONYMOUS, "", "UpdateSchema"),
            )
        )

    def import_schema(
        self,
        name: str,
        expected_version: int,
        document: Mapping[str, object],
        *,
        allow_unknown_keys: bool | None = None,
        validate_only: bool = False,
        force: bool = False,
        caller: Caller | None = None,
    ) -> SchemaUpdate:
        require_schema_name(name)
        return retry_on_conflict(
            lambda: self._evolve(
                name,
                expected_version,
                lambda state: plan_import(state, document, allow_unknown_keys),
                validate_only=validate_only,
                force=force,
                caller=caller or Caller(ANONYMOUS, "", "ImportSchema"),
            )
        )

    def _evolve(
        self,
        name: str,
        expected_version: int,
        plan: object,
        *,
        validate_only: bool,
        force: bool,
        caller: Caller,
    ) -> SchemaUpdate:
        assert callable(plan)
        with self.db.session(write=not validate_only) as session:
            ref = schemas.get_ref(session, name, lock=None if validate_only else "update")
            latest = ref.latest_version if ref else 0
            if expected_version != latest:
                raise VersionConflict(name, expected_version, latest)
            current = (
                self.cache.version(session, ref, latest)
                if ref and latest
                else SchemaVersion(name, 0, SchemaState(), None)
            )
            evolution: Evolution = plan(current.state)
            if not evolution.changed:
                return SchemaUpdate(current, ImpactReport(), False, evolution.applied)
            effects = plan_data_effects(evolution.before, evolution.after)
            impact = (
                stored_data.assess_impact(session, ref, effects, evolution.after)
                if ref
                else ImpactReport()
            )
            now = self.clock()
            if validate_only:  # the impact is the answer, whatever force says
                preview = SchemaVersion(name, latest + 1, evolution.after, None, evolution.applied)
                return SchemaUpdate(preview, impact, True, evolution.applied)
            if impact.invalid_records and not force:
                raise IncompatibleChange(
                    f'schema "{name}": {impact.describe()}. Set force to apply the change '
                    "anyway; it removes the invalid values from the stored records (a "
                    "record that lacks a required key is left as it is)",
                    impact,
                )
            ref = ref or schemas.create_schema(session, name, now)
            saved = schemas.add_version(session, ref, evolution.after, evolution.applied, now)
            stored_data.apply_effects(session, ref, effects, evolution.after, now, saved.version)
            audit.record(session, caller, name, change_summary(saved.version, evolution, impact),
                         "applied", now)  # fmt: skip
            return SchemaUpdate(saved, impact, True, evolution.applied)

    # --- helpers ----------------------------------------------------------

    @staticmethod
    def _require_ref(session: Session, name: str) -> SchemaRef:
        ref = schemas.get_ref(session, name)
        if ref is None or ref.latest_version == 0:
            raise SchemaNotFound(name)
        return ref


def change_summary(version: int, evolution: Evolution, impact: ImpactReport) -> str:
    """An audit event's summary of a schema change: the changes, and what they removed."""
    parts = [f"version {version}: " + "; ".join(evolution.applied)]
    for key, count in sorted(impact.purged_by_key.items()):
        parts.append(f'hard delete of "{key}" purged {count} value(s)')
    if impact.invalid_by_key:
        lost = sum(impact.invalid_by_key.values())
        parts.append(f"forced: {lost} invalid value(s) removed")
    for key, count in sorted(impact.missing_by_key.items()):
        parts.append(f'forced: {count} record(s) lack required "{key}"')
    return "; ".join(parts)
