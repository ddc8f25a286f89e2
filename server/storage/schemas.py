"""Schema repository: schemas and their immutable versions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from ..domain.errors import ConcurrentWrite
from ..domain.schema import SchemaState, SchemaSummary, SchemaVersion
from . import bulk
from .database import Database
from .dialects import upsert_insert
from .models import SchemaRow, SchemaVersionRow

Lock = Literal["share", "update"] | None


@dataclass(frozen=True, slots=True)
class SchemaRef:
    """A schema's identity and its latest version number."""

    id: int
    name: str
    latest_version: int


_schemas = cast(Table, SchemaRow.__table__)
_REF = select(_schemas.c.id, _schemas.c.name, _schemas.c.latest_version).where(
    _schemas.c.name == bindparam("name")
)
_REF_BY_LOCK = {
    None: _REF,
    "update": _REF.with_for_update(),
    "share": _REF.with_for_update(read=True),
}


def get_ref(session: Session, name: str, *, lock: Lock = None) -> SchemaRef | None:
    """The schema row; `lock` takes a row lock on PostgreSQL (SQLite locks the file).

    Run by the driver: every RPC starts here, and the ORM's own select cost about
    a millisecond of a bundle and 40% of a GetSchema.
    """
    rows = bulk.fetch(session, _REF_BY_LOCK[lock], {"name": name})
    return SchemaRef(*rows[0]) if rows else None


def read_ref(db: Database, name: str) -> SchemaRef | None:
    """The schema row, read outside any transaction (see Database.read): for calls that
    only need the latest version number, e.g. GetSchema of version 0."""
    rows = db.read(_REF, {"name": name})
    return SchemaRef(*rows[0]) if rows else None


def create_schema(session: Session, name: str, now: datetime) -> SchemaRef:
    """Insert a schema at version 0. A concurrent creator wins: ConcurrentWrite."""
    statement = (
        upsert_insert(session, SchemaRow)
        .values(name=name, latest_version=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(SchemaRow.id)
    )
    if session.execute(statement).scalar_one_or_none() is None:
        raise ConcurrentWrite(f'schema "{name}" was created by a concurrent request')
    ref = get_ref(session, name, lock="update")
    assert ref is not None
    return ref


def load_version(session: Session, ref: SchemaRef, version: int) -> SchemaVersion | None:
    row = session.get(SchemaVersionRow, (ref.id, version))
    if row is None:
        return None
    return SchemaVersion(
        name=ref.name,
        version=row.version,
        state=SchemaState.from_json(json.loads(row.definition)),
        created_at=row.created_at,
        changes=tuple(json.loads(row.changes)),
    )


def add_version(
    session: Session,
    ref: SchemaRef,
    state: SchemaState,
    changes: tuple[str, ...],
    now: datetime,
) -> SchemaVersion:
    """Store version latest+1. The (schema, version) key makes a duplicate impossible."""
    version = ref.latest_version + 1
    session.add(
        SchemaVersionRow(
            schema_id=ref.id,
            version=version,
            definition=json.dumps(state.to_json(), sort_keys=True),
            changes=json.dumps(list(changes)),
            created_at=now,
        )
    )
    moved = session.execute(
        update(SchemaRow)
        .where(SchemaRow.id == ref.id, SchemaRow.latest_version == ref.latest_version)
        .values(latest_version=version, updated_at=now)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentWrite(f'schema "{ref.name}" changed while this update ran')
    session.flush()
    return SchemaVersion(ref.name, version, state, now, changes)


def list_summaries(session: Session, after_name: str, limit: int) -> list[SchemaSummary]:
    """Schemas with at least one version, ordered by name, after `after_name`."""
    rows = session.execute(
        select(
            SchemaRow.name,
            SchemaRow.latest_version,
            SchemaRow.updated_at,
            SchemaVersionRow.definition,
        )
        .join(
            SchemaVersionRow,
            (SchemaVersionRow.schema_id == SchemaRow.id)
            & (SchemaVersionRow.version == SchemaRow.latest_version),
        )
        .where(SchemaRow.name > after_name)
        .order_by(SchemaRow.name)
        .limit(limit)
    ).all()
    return [
        SchemaSummary(
            name=row.name,
            latest_version=row.latest_version,
            active_keys=len(SchemaState.from_json(json.loads(row.definition)).active_keys()),
            updated_at=row.updated_at,
        )
        for row in rows
    ]


def list_versions(
    session: Session, ref: SchemaRef, before_version: int, limit: int
) -> list[SchemaVersion]:
    """Versions below `before_version`, newest first, without their key state."""
    rows = session.execute(
        select(SchemaVersionRow.version, SchemaVersionRow.created_at, SchemaVersionRow.changes)
        .where(SchemaVersionRow.schema_id == ref.id, SchemaVersionRow.version < before_version)
        .order_by(SchemaVersionRow.version.desc())
        .limit(limit)
    ).all()
    return [
        SchemaVersion(
            ref.name, r.version, SchemaState(), r.created_at, tuple(json.loads(r.changes))
        )
        for r in rows
    ]


def all_names(session: Session) -> list[str]:
    """Every schema's name (for filtering listings by a key's globs)."""
    return list(session.execute(select(SchemaRow.name).order_by(SchemaRow.name)).scalars())
