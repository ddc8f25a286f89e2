"""Query index repository: maintain entries and read them in order or by range."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, func, select
from sqlalchemy import tuple_ as row
from sqlalchemy.orm import Session

from ..domain.query.index import IndexEntry, IndexRange, IndexTable, IndexValue
from . import bulk
from .dialects import DIALECT_INSERTS, dialect_of
from .models import IndexNumberRow, IndexStringRow

TABLES: dict[IndexTable, Table] = {
    IndexTable.NUMBER: cast(Table, IndexNumberRow.__table__),
    IndexTable.STRING: cast(Table, IndexStringRow.__table__),
}
_DELETE = {
    kind: delete(table).where(
        table.c.schema_id == bindparam("b_schema_id"),
        table.c.key == bindparam("b_key"),
        table.c.value == bindparam("b_value"),
        table.c.data_unit_id == bindparam("b_data_unit_id"),
    )
    for kind, table in TABLES.items()
}


def _split(
    schema_id: int, entries: Iterable[tuple[str, IndexEntry]]
) -> dict[IndexTable, list[dict[str, Any]]]:
    rows: dict[IndexTable, list[dict[str, Any]]] = defaultdict(list)
    for duid, (kind, key, value) in entries:
        rows[kind].append(
            {"schema_id": schema_id, "key": key, "value": value, "data_unit_id": duid}
        )
    return rows


def remove_entries(
    session: Session, schema_id: int, entries: Iterable[tuple[str, IndexEntry]]
) -> None:
    """Delete (data_unit_id, entry) pairs, each by its full primary key."""
    for kind, rows in _split(schema_id, entries).items():
        bulk.executemany(
            session,
            _DELETE[kind],
            [{f"b_{name}": value for name, value in r.items()} for r in rows],
        )


_INSERT = {
    (dialect, kind): insert(table)
    .values(
        schema_id=bindparam("schema_id"),
        key=bindparam("key"),
        value=bindparam("value"),
        data_unit_id=bindparam("data_unit_id"),
    )
    .on_conflict_do_nothing()
    for dialect, insert in DIALECT_INSERTS.items()
    for kind, table in TABLES.items()
}


def add_entries(session: Session, schema_id: int, entries: Iterable[tuple[str, IndexEntry]]
                ) -> None:  # fmt: skip
    dialect = dialect_of(session)
    for kind, rows in _split(schema_id, entries).items():
        bulk.executemany(session, _INSERT[(dialect, kind)], rows)


def drop_key(session: Session, schema_id: int, key: str) -> None:
    """Forget every entry of one key."""
    connection = session.connection()
    for table in TABLES.values():
        connection.execute(delete(table).where(table.c.schema_id == schema_id, table.c.key == key))


# --- reading -------------------------------------------------------------------------


def _range_condition(table: Table, schema_id: int, bounds: IndexRange) -> ColumnElement[bool]:
    conditions = [table.c.schema_id == schema_id, table.c.key == bounds.key]
    if bounds.is_point:
        conditions.append(table.c.value == bounds.low)
        return and_(*conditions)
    if bounds.low is not None:
        conditions.append(
            table.c.value >= bounds.low if bounds.low_inclusive else table.c.value > bounds.low
        )
    if bounds.high is not None:
        conditions.append(
            table.c.value <= bounds.high if bounds.high_inclusive else table.c.value < bounds.high
        )
    return and_(*conditions)


def _union(schema_id: int, ranges: Sequence[IndexRange]) -> list[Any]:
    """One SELECT of data_unit_id per range (ranges of both tables may be mixed)."""
    return [
        select(TABLES[r.table].c.data_unit_id).where(
            _range_condition(TABLES[r.table], schema_id, r)
        )
        for r in ranges
    ]


def count_entries(session: Session, schema_id: int, ranges: Sequence[IndexRange],
                  cap: int | None = None) -> int:  # fmt: skip
    """Entries in the ranges (a record in two ranges counts twice), up to `cap`."""
    connection = session.connection()
    total = 0
    for query in _union(schema_id, ranges):
        if cap is not None:
            query = query.limit(cap - total)
        total += int(connection.execute(select(func.count()).select_from(query.subquery()))
                     .scalar_one())  # fmt: skip
        if cap is not None and total >= cap:
            return cap
    return total


def ids_in_ranges(session: Session, schema_id: int, ranges: Sequence[IndexRange]) -> set[str]:
    connection = session.connection()
    found: set[str] = set()
    for query in _union(schema_id, ranges):
        found.update(connection.execute(query).scalars())
    return found


def walk(
    session: Session,
    schema_id: int,
    kind: IndexTable,
    key: str,
    *,
    descending: bool,
    after: tuple[IndexValue, str] | None,
    bounds: IndexRange | None,
    limit: int,
) -> list[tuple[IndexValue, str]]:
    """(value, data_unit_id) entries of one key in index order, after a position."""
    table = TABLES[kind]
    condition = (
        _range_condition(table, schema_id, bounds)
        if bounds is not None
        else and_(table.c.schema_id == schema_id, table.c.key == key)
    )
    query = select(table.c.value, table.c.data_unit_id).where(condition)
    if after is not None:
        position = row(table.c.value, table.c.data_unit_id)
        point = row(bindparam("after_value", after[0], type_=table.c.value.type),
                    bindparam("after_id", after[1], type_=table.c.data_unit_id.type))  # fmt: skip
        query = query.where(position < point if descending else position > point)
    if descending:
        query = query.order_by(table.c.value.desc(), table.c.data_unit_id.desc())
    else:
        query = query.order_by(table.c.value, table.c.data_unit_id)
    rows = session.connection().execute(query.limit(limit)).all()
    return [(value, duid) for value, duid in rows]


def value_counts(
    session: Session,
    schema_id: int,
    kind: IndexTable,
    key: str,
    *,
    low: str | None,
    high: str | None,
    limit: int,
) -> list[tuple[IndexValue, int]]:
    """The most frequent entries of one key (between `low` inclusive and `high`
    exclusive, when given), with their counts: a scan of the key's index range."""
    table = TABLES[kind]
    count = func.count().label("n")
    conditions = [table.c.schema_id == schema_id, table.c.key == key]
    if low is not None:
        conditions.append(table.c.value >= low)
    if high is not None:
        conditions.append(table.c.value < high)
    query = (
        select(table.c.value, count)
        .where(*conditions)
        .group_by(table.c.value)
        .order_by(count.desc(), table.c.value)
        .limit(limit)
    )
    return [(value, int(n)) for value, n in session.connection().execute(query)]
