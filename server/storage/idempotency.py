"""Idempotency keys: the stored result of each bundle applied under a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session

from ..domain.errors import ConcurrentWrite
from . import bulk
from .dialects import DIALECT_INSERTS, dialect_of
from .models import IdempotencyRow

_keys = cast(Table, IdempotencyRow.__table__)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    response: str


_FIND = select(_keys.c.request_hash, _keys.c.response).where(
    _keys.c.schema_id == bindparam("schema_id"),
    _keys.c.key == bindparam("key"),
    _keys.c.created_at >= bindparam("not_before"),
)


def find(session: Session, schema_id: int, key: str, not_before: datetime) -> StoredResponse | None:
    """The result stored under `key`, unless it expired (was stored before `not_before`)."""
    rows = bulk.fetch(
        session,
        _FIND,
        {"schema_id": schema_id, "key": key,
         "not_before": bulk.driver_timestamp(session, not_before)},
    )  # fmt: skip
    return StoredResponse(*rows[0]) if rows else None


def _claim(insert: object) -> object:
    """Insert a key's result, or replace an expired one; returns the key if it did."""
    statement = insert(_keys).values(  # type: ignore[operator]
        schema_id=bindparam("schema_id"),
        key=bindparam("key"),
        request_hash=bindparam("request_hash"),
        response=bindparam("response"),
        created_at=bindparam("created_at"),
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["schema_id", "key"],
        set_={
            "request_hash": excluded.request_hash,
            "response": excluded.response,
            "created_at": excluded.created_at,
        },
        where=_keys.c.created_at < bindparam("not_before"),
    ).returning(_keys.c.key)


_CLAIM = {dialect: _claim(insert) for dialect, insert in DIALECT_INSERTS.items()}


def store(
    session: Session,
    schema_id: int,
    key: str,
    request_hash: str,
    response: str,
    *,
    now: datetime,
    not_before: datetime,
) -> None:
    """Remember a result, replacing an expired one. A concurrent claim: ConcurrentWrite.

    One statement (an upsert that only overwrites an expired row), run by the driver.
    """
    claimed = bulk.fetch(
        session,
        _CLAIM[dialect_of(session)],  # type: ignore[arg-type]
        {
            "schema_id": schema_id,
            "key": key,
            "request_hash": request_hash,
            "response": response,
            "created_at": bulk.driver_timestamp(session, now),
            "not_before": bulk.driver_timestamp(session, not_before),
        },
    )
    if not claimed:
        raise ConcurrentWrite(f'idempotency key "{key}" was used by a concurrent request; retry')


def purge_expired(session: Session, not_before: datetime) -> int:
    """Forget results stored before `not_before`; returns how many."""
    result = session.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < not_before))
    return int(result.rowcount)  # type: ignore[attr-defined]
