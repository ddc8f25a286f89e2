"""Dialect-specific statement builders shared by the repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT clauses on the session's backend."""
    return postgresql.insert(table) if is_postgresql(session) else sqlite.insert(table)
