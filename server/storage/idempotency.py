"""Idempotency keys: the stored result of each bundle applied under a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..domain.errors import ConcurrentWrite
from .dialects import upsert_insert
from .models import IdempotencyRow


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    response: str


def find(session: Session, schema_id: int, key: str, not_before: datetime) -> StoredResponse | None:
    """The result stored under `key`, unless it expired (was stored before `not_before`)."""
    row = session.execute(
        select(IdempotencyRow.request_hash, IdempotencyRow.response).where(
            IdempotencyRow.schema_id == schema_id,
            IdempotencyRow.key == key,
            IdempotencyRow.created_at >= not_before,
        )
    ).one_or_none()
    return StoredResponse(row.request_hash, row.response) if row else None


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
    """Remember a result, replacing an expired one. A concurrent claim: ConcurrentWrite."""
    session.execute(
        delete(IdempotencyRow).where(
            IdempotencyRow.schema_id == schema_id,
            IdempotencyRow.key == key,
            IdempotencyRow.created_at < not_before,
        )
    )
    statement = (
        upsert_insert(session, IdempotencyRow)
        .values(
            schema_id=schema_id,
            key=key,
            request_hash=request_hash,
            response=response,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRow.key)
    )
    if session.execute(statement).scalar_one_or_none() is None:
        raise ConcurrentWrite(f'idempotency key "{key}" was used by a concurrent request; retry')


def purge_expired(session: Session, not_before: datetime) -> int:
    """Forget results stored before `not_before`; returns how many."""
    result = session.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < not_before))
    return int(result.rowcount)  # type: ignore[attr-defined]
