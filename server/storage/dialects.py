"""Dialect-specific statement builders shared by the repositories."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

DIALECT_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_of(session: Session) -> str:
    return str(session.get_bind().dialect.name)


def is_postgresql(session: Session) -> bool:
    return dialect_of(session) == "postgresql"


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT clauses on the session's backend."""
    return postgresql.insert(table) if is_postgresql(session) else sqlite.insert(table)


def id_in(session: Session, column: Any, ids: list[str]) -> Any:
    """`column IN ids` with one parameter whatever the count.

    On PostgreSQL it is `= ANY(array)`: each distinct IN-list length would be its
    own prepared statement to psycopg, and once prepared PostgreSQL may switch to
    a generic plan that filters instead of probing the primary key.
    On SQLite it is `IN (SELECT value FROM json_each(?))`, which SQLite probes the
    index with like a literal list; rendering 1000 placeholders per statement cost
    SQLAlchemy about 1 ms.
    """
    if is_postgresql(session):
        return column == any_(bindparam(None, ids, type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam(None, orjson.dumps(ids).decode(), type_=String))
    return column.in_(select(listed.table_valued("value").c.value))


def id_in_parameter(dialect: str, column: Any, name: str) -> Any:
    """`id_in` for a statement built once: the ids come as parameter `name`, in the
    form `ids_parameter` gives."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam(name, type_=String))
    return column.in_(select(listed.table_valued("value").c.value))


def ids_parameter(dialect: str, ids: list[str]) -> object:
    """The value of an `id_in_parameter` parameter: a list for PostgreSQL's array,
    JSON text for SQLite's json_each."""
    return ids if dialect == "postgresql" else orjson.dumps(ids).decode()
