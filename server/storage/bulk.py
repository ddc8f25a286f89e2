"""The write path's multi-row statements, compiled once per dialect and run by the driver.

SQLAlchemy's per-row parameter processing costs more than the database's own work
at 1000 rows per statement, so the hot statements are compiled to SQL once and
handed to the DB-API cursor's executemany; values are passed in driver-ready form
(see `driver_timestamp`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

import orjson
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_compiled: dict[tuple[str, int], tuple[str, tuple[str, ...] | None]] = {}
_lock = threading.Lock()


def _compile(session: Session, statement: ClauseElement) -> tuple[str, tuple[str, ...] | None]:
    return compiled_sql(session.get_bind().dialect, statement)


def compiled_sql(dialect: Dialect, statement: ClauseElement) -> tuple[str, tuple[str, ...] | None]:
    """A module-level statement's SQL for `dialect` and its parameter order (None: named)."""
    key = (dialect.name, id(statement))
    found = _compiled.get(key)
    if found is None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        positions = tuple(compiled.positiontup) if compiled.positiontup else None
        found = (str(compiled), positions)
        with _lock:
            _compiled[key] = found
    return found


def fetch(session: Session, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
    """The rows of a module-level SELECT, run by the driver: plain values, no type
    processing (so use it for ints, text and driver-native types only)."""
    sql, positions = _compile(session, statement)
    return list(session.connection().exec_driver_sql(sql, _parameters(positions, params)))


def _parameters(positions: tuple[str, ...] | None, params: Mapping[str, Any]) -> Any:
    return tuple(params[name] for name in positions) if positions else params


def executemany_rows(
    session: Session,
    statement: ClauseElement,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> int:
    """`executemany` for rows given as tuples in `columns` order (no dict per row)."""
    if not rows:
        return 0
    sql, positions = _compile(session, statement)
    params: Any = rows
    if positions is None:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    elif tuple(positions) != tuple(columns):
        order = itemgetter(*(columns.index(name) for name in positions))
        params = [order(row) for row in rows]
    result = session.connection().exec_driver_sql(sql, params)
    return int(result.rowcount)


def executemany(
    session: Session, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run `statement` once per row through the driver; returns the summed row count.

    `statement` must be a module-level constant: compiled SQL is cached by its id.
    """
    if not rows:
        return 0
    sql, positions = _compile(session, statement)
    params: Any = rows
    if positions and len(positions) == 1:
        params = [(row[positions[0]],) for row in rows]
    elif positions:
        as_tuple = itemgetter(*positions)  # a tuple of the row's values, in C
        params = [as_tuple(row) for row in rows]
    result = session.connection().exec_driver_sql(sql, params)
    return int(result.rowcount)


def driver_timestamp(session: Session, moment: datetime) -> object:
    """A UTC timestamp as the driver stores it (SQLite keeps SQLAlchemy's naive text form)."""
    if session.get_bind().dialect.name == "sqlite":
        return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return moment


def timestamp_from_driver(value: object) -> datetime:
    """The aware UTC datetime of a timestamp column read by `fetch`."""
    if isinstance(value, str):  # SQLite: SQLAlchemy's naive UTC text form
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def json_from_driver(value: object) -> Any:
    """A JSON column read by `fetch`: text on SQLite, already decoded on PostgreSQL."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value
