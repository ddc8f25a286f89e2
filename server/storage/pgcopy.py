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
) -> int:
    """Insert `rows` (tuples in `columns` order); returns how many rows were written."""
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
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} {on_conflict}"
        )
        written = int(cursor.rowcount)
        cursor.execute(f"DELETE FROM {staging}")
    return written
