"""Audit log repository: append an event in the caller's transaction; read them back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.access import AuditEvent, Caller
from .models import AuditEventRow

# A summary is cut to this many characters (a change of 1,024 keys lists each one).
MAX_SUMMARY = 4000


def record(
    session: Session, caller: Caller, schema: str | None, summary: str, outcome: str,
    now: datetime,
) -> None:  # fmt: skip
    """Add an event to the session's transaction: it commits or rolls back with the change."""
    if len(summary) > MAX_SUMMARY:
        cut = MAX_SUMMARY - 40
        summary = f"{summary[:cut]}… ({len(summary) - cut} more characters)"
    session.add(
        AuditEventRow(created_at=now, key_name=caller.key_name, peer=caller.peer[:256],
                      rpc=caller.rpc, schema_name=schema, summary=summary, outcome=outcome)
    )  # fmt: skip


def list_events(
    session: Session, *, schema: str | None, schemas: Sequence[str] | None, before_id: int,
    limit: int,
) -> list[AuditEvent]:  # fmt: skip
    """Events newest first with id < before_id: of one schema, or of the named `schemas`
    (None: every event, including those that concern no schema)."""
    query = select(AuditEventRow).where(AuditEventRow.id < before_id)
    if schema is not None:
        query = query.where(AuditEventRow.schema_name == schema)
    elif schemas is not None:
        query = query.where(AuditEventRow.schema_name.in_(list(schemas)))
    rows = session.execute(query.order_by(AuditEventRow.id.desc()).limit(limit)).scalars()
    return [
        AuditEvent(r.id, r.created_at, r.key_name, r.peer, r.rpc, r.schema_name, r.summary,
                   r.outcome)
        for r in rows
    ]  # fmt: skip
