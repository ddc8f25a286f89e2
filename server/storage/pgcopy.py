"""PostgreSQL bulk inserts through COPY.

`executemany` of 1000 rows costs ~16 ms through psycopg. Rows that must not exist
yet (new records) are copied straight into their table. Rows that may conflict go
through a per-connection staging table and one INSERT ... SELECT ... ON CONFLICT,
which keeps the conflict handling (and its row count) of a plain INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from ..domain.errors import ConcurrentWrite


def _copy(
    cursor: Any,
    target: str,
    names: str,
    rows: Sequence[Sequence[Any]],
    binary_types: Sequence[str] | None,
) -> None:
    binary = " (FORMAT BINARY)" if binary_types else ""
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN{binary}") as copy:
        if binary_types:
            copy.set_types(list(binary_types))
        for row in rows:
            copy.write_row(row)


def _cursor(session: Session) -> Any:
    driver = session.connection().connection.driver_connection
    assert driver is not None
    return driver.cursor()


def copy_new(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    binary_types: Sequence[str] | None = None,
) -> None:
    """COPY rows that were read as absent straight into `table` (a third cheaper than staging).

    If a concurrent transaction inserted one of their keys meanwhile, the COPY fails
    and so does the whole transaction: ConcurrentWrite, so that the caller retries.
    With `binary_types` see `copy_insert`.
    """
    if not rows:
        return
    from psycopg import errors  # only installed with the postgres extra

    with _cursor(session) as cursor:
        try:
            _copy(cursor, table.name, ", ".join(columns), rows, binary_types)
        except errors.UniqueViolation:
            raise ConcurrentWrite(
                f"a concurrent request wrote some of these rows into {table.name}; retry"
            ) from None


def copy_insert(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    on_conflict: str = "ON CONFLICT DO NOTHING",
    binary_types: Sequence[str] | None = None,
) -> int:
    """Insert `rows` (tuples in `columns` order); returns how many rows were written.

    With `binary_types` (PostgreSQL type names, one per column) the rows travel in
    COPY's binary format: bytea values then go as they are instead of as hex text,
    which halves the cost of copying embeddings.
    """
    if not rows:
        return 0
    staging = f"metareg_staging_{table.name}"
    names = ", ".join(columns)
    with _cursor(session) as cursor:
        # Temporary tables live per connection; ON COMMIT DELETE ROWS empties it
        # at the end of every transaction, including a rolled-back one.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table.name}) ON COMMIT DELETE ROWS"
        )
        _copy(cursor, staging, names, rows, binary_types)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} {on_conflict}"
        )
        written = int(cursor.rowcount)
        cursor.execute(f"DELETE FROM {staging}")
    return written
