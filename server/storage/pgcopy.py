"""PostgreSQL bulk inserts through COPY into a per-connection staging table.

`executemany` of 1000 rows costs ~16 ms through psycopg; COPY of the same rows
into a temporary table and one INSERT ... SELECT ... ON CONFLICT from it is several
times cheaper, and keeps the conflict handling (and its row count) of a plain INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


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
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        # Temporary tables live per connection; ON COMMIT DELETE ROWS empties it
        # at the end of every transaction, including a rolled-back one.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table.name}) ON COMMIT DELETE ROWS"
        )
        binary = " (FORMAT BINARY)" if binary_types else ""
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN{binary}") as copy:
            if binary_types:
                copy.set_types(list(binary_types))
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} {on_conflict}"
        )
        written = int(cursor.rowcount)
        cursor.execute(f"DELETE FROM {staging}")
    return written
