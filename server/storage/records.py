"""Metadata record repository: bulk load and write, reads, deletes and key purges."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..domain.bundle import RecordWrite, StoredRecord
from ..domain.errors import ConcurrentWrite
from ..domain.query.index import index_entries
from ..domain.schema import KeyDefinition
from ..domain.values import float32_vector
from . import bulk, index, pgcopy
from .dialects import (
    DIALECT_INSERTS,
    dialect_of,
    id_in,
    id_in_parameter,
    ids_parameter,
    is_postgresql,
)
from .models import RecordEmbeddingRow, RecordRow

records = cast(Table, RecordRow.__table__)
embeddings = cast(Table, RecordEmbeddingRow.__table__)

_LOAD_RECORDS = {
    dialect: select(
        records.c.data_unit_id,
        records.c.data,
        records.c.revision,
        records.c.schema_version,
        records.c.updated_at,
    ).where(
        records.c.schema_id == bindparam("schema_id"),
        id_in_parameter(dialect, records.c.data_unit_id, "ids"),
    )
    for dialect in DIALECT_INSERTS
}
_LOAD_VECTORS = {
    dialect: select(embeddings.c.data_unit_id, embeddings.c.key, embeddings.c.vector).where(
        embeddings.c.schema_id == bindparam("schema_id"),
        id_in_parameter(dialect, embeddings.c.data_unit_id, "ids"),
    )
    for dialect in DIALECT_INSERTS
}


def load_records(
    session: Session, schema_id: int, data_unit_ids: Iterable[str]
) -> dict[str, StoredRecord]:
    """Stored records by data unit id, with every stored value (hidden ones included).

    Run by the driver (see `bulk.fetch`): a bundle reads up to 1000 records here.
    """
    ids = list(dict.fromkeys(data_unit_ids))
    if not ids:
        return {}
    dialect = dialect_of(session)
    rows = bulk.fetch(
        session,
        _LOAD_RECORDS[dialect],
        {"schema_id": schema_id, "ids": ids_parameter(dialect, ids)},
    )
    load, stamp = bulk.json_from_driver, bulk.timestamp_from_driver
    found = {
        duid: StoredRecord(duid, load(data), revision, version, stamp(updated))
        for duid, data, revision, version, updated in rows
    }
    if found:
        params = {"schema_id": schema_id, "ids": ids_parameter(dialect, list(found))}
        for duid, key, raw in bulk.fetch(session, _LOAD_VECTORS[dialect], params):
            found[duid].values[key] = float32_vector(raw)
    return found


_INSERT_RECORD = {
    dialect: insert(records)
    .values(
        schema_id=bindparam("schema_id"),
        data_unit_id=bindparam("data_unit_id"),
        data=bindparam("data"),
        schema_version=bindparam("schema_version"),
        revision=bindparam("revision"),
        updated_at=bindparam("updated_at"),
    )
    .on_conflict_do_nothing()
    for dialect, insert in DIALECT_INSERTS.items()
}
_RECORD_COLUMNS = (
    "schema_id", "data_unit_id", "data", "schema_version", "revision", "updated_at",
)  # fmt: skip
_UPDATE_RECORD = (
    update(records)
    .where(
        records.c.schema_id == bindparam("b_schema_id"),
        records.c.data_unit_id == bindparam("b_data_unit_id"),
        records.c.revision == bindparam("b_previous_revision"),
    )
    .values(
        data=bindparam("b_data"),
        schema_version=bindparam("b_schema_version"),
        revision=bindparam("b_revision"),
        updated_at=bindparam("b_updated_at"),
    )
)
_DELETE_EMBEDDING = delete(embeddings).where(
    embeddings.c.schema_id == bindparam("b_schema_id"),
    embeddings.c.data_unit_id == bindparam("b_data_unit_id"),
    embeddings.c.key == bindparam("b_key"),
)
_UPSERT_EMBEDDING = {
    dialect: (statement := insert(embeddings).values(
        schema_id=bindparam("schema_id"),
        data_unit_id=bindparam("data_unit_id"),
        key=bindparam("key"),
        vector=bindparam("vector"),
    )).on_conflict_do_update(
        index_elements=["schema_id", "data_unit_id", "key"],
        set_={"vector": statement.excluded.vector},
    )
    for dialect, insert in DIALECT_INSERTS.items()
}  # fmt: skip


def write_records(
    session: Session,
    schema_id: int,
    writes: Sequence[RecordWrite],
    schema_version: int,
    now: datetime,
) -> None:
    """Store a bundle's final record states: one multi-row statement per table.

    New records are inserted only if still absent and existing ones updated only
    at the revision read earlier; if a concurrent writer got there first,
    ConcurrentWrite rolls the whole bundle back.
    """
    ordered = sorted(writes, key=_by_data_unit_id)  # one lock order for all writers
    stamp = bulk.driver_timestamp(session, now)
    new = [
        (schema_id, w.data_unit_id, w.encoded.scalars_json, schema_version, w.revision, stamp)
        for w in ordered
        if not w.previous_revision
    ]
    if is_postgresql(session):
        pgcopy.copy_new(session, records, _RECORD_COLUMNS, new)
        inserted = len(new)  # or copy_new raised ConcurrentWrite
    else:
        insert = _INSERT_RECORD[dialect_of(session)]
        inserted = bulk.executemany_rows(session, insert, _RECORD_COLUMNS, new)
    if inserted != len(new):
        raise ConcurrentWrite("a concurrent request created some of these records; retry")
    changed = [
        (schema_id, w.data_unit_id, w.previous_revision, w.encoded.scalars_json,
         schema_version, w.revision, stamp)
        for w in ordered
        if w.previous_revision
    ]  # fmt: skip
    updated = bulk.executemany_rows(session, _UPDATE_RECORD, _UPDATE_COLUMNS, changed)
    if updated != len(changed):
        raise ConcurrentWrite("a concurrent request changed some of these records; retry")
    _write_embeddings(session, schema_id, ordered)
    index.remove_entries(
        session, schema_id, ((w.data_unit_id, e) for w in ordered for e in w.index_removed)
    )
    index.add_entries(
        session, schema_id, ((w.data_unit_id, e) for w in ordered for e in w.index_added)
    )


_by_data_unit_id = attrgetter("data_unit_id")
_UPDATE_COLUMNS = (
    "b_schema_id", "b_data_unit_id", "b_previous_revision", "b_data", "b_schema_version",
    "b_revision", "b_updated_at",
)  # fmt: skip


def _write_embeddings(session: Session, schema_id: int, writes: Sequence[RecordWrite]) -> None:
    bulk.executemany(
        session,
        _DELETE_EMBEDDING,
        [
            {"b_schema_id": schema_id, "b_data_unit_id": w.data_unit_id, "b_key": key}
            for w in writes
            for key in w.embeddings_to_delete
        ],
    )
    if is_postgresql(session):
        columns = ("schema_id", "data_unit_id", "key", "vector")
        binary_types = ("int4", "text", "text", "bytea")

        def rows(new: bool) -> list[tuple[int, str, str, bytes]]:
            return [
                (schema_id, w.data_unit_id, key, raw)
                for w in writes
                if (w.previous_revision == 0) is new
                for key, raw in w.embeddings_to_upsert.items()
            ]

        # A record inserted by this bundle has no embedding rows yet (they go
        # with it on delete), so its vectors are copied straight in.
        pgcopy.copy_new(session, embeddings, columns, rows(True), binary_types)
        pgcopy.copy_insert(
            session,
            embeddings,
            columns,
            rows(False),
            "ON CONFLICT (schema_id, data_unit_id, key) DO UPDATE SET vector = EXCLUDED.vector",
            binary_types,
        )
        return
    bulk.executemany_rows(
        session,
        _UPSERT_EMBEDDING[dialect_of(session)],
        ("schema_id", "data_unit_id", "key", "vector"),
        [
            (schema_id, w.data_unit_id, key, raw)
            for w in writes
            for key, raw in w.embeddings_to_upsert.items()
        ],
    )


def get_records(
    session: Session, schema_id: int, data_unit_ids: Sequence[str]
) -> list[StoredRecord]:
    """Records in request order; ids without a record are left out."""
    found = load_records(session, schema_id, data_unit_ids)
    return [found[d] for d in dict.fromkeys(data_unit_ids) if d in found]


def delete_records(
    session: Session,
    schema_id: int,
    data_unit_ids: Sequence[str],
    indexed: Mapping[str, KeyDefinition],
) -> set[str]:
    """Delete whole records, their embeddings and index entries; returns the ids that existed."""
    ids = list(dict.fromkeys(data_unit_ids))
    if not ids:
        return set()
    connection = session.connection()
    # Locked (PostgreSQL): a bundle committing between this read and the deletes
    # below would otherwise leave index entries for values this read never saw.
    existing = load_scalars(session, schema_id, ids, lock=True)
    if existing:
        found = list(existing)
        index.remove_entries(
            session,
            schema_id,
            ((duid, e) for duid, data in existing.items() for e in index_entries(data, indexed)),
        )
        connection.execute(
            delete(embeddings).where(
                embeddings.c.schema_id == schema_id,
                id_in(session, embeddings.c.data_unit_id, found),
            )
        )
        connection.execute(
            delete(records).where(
                records.c.schema_id == schema_id, id_in(session, records.c.data_unit_id, found)
            )
        )
    return set(existing)


# --- reads for queries ------------------------------------------------------------


def load_scalars(
    session: Session, schema_id: int, data_unit_ids: Sequence[str], *, lock: bool = False
) -> dict[str, dict[str, object]]:
    """Scalar values (no embeddings) of the records that exist, by data unit id.

    `lock` takes the rows' write locks until the transaction ends (PostgreSQL; SQLite
    writers hold the database lock anyway), in data_unit_id order as writers do.
    """
    if not data_unit_ids:
        return {}
    query = select(records.c.data_unit_id, records.c.data).where(
        records.c.schema_id == schema_id,
        id_in(session, records.c.data_unit_id, list(data_unit_ids)),
    )
    if lock:
        query = query.order_by(records.c.data_unit_id).with_for_update()
    rows = session.connection().execute(query)
    return {row[0]: row[1] for row in rows}


def embedding_keys_of(
    session: Session, schema_id: int, data_unit_ids: Sequence[str]
) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    if not data_unit_ids:
        return found
    rows = session.connection().execute(
        select(embeddings.c.data_unit_id, embeddings.c.key).where(
            embeddings.c.schema_id == schema_id,
            id_in(session, embeddings.c.data_unit_id, list(data_unit_ids)),
        )
    )
    for duid, key in rows:
        found.setdefault(duid, set()).add(key)
    return found


def scan_in_id_order(
    session: Session, schema_id: int, after: str | None, limit: int
) -> list[tuple[str, dict[str, object]]]:
    """Up to `limit` records after `after`, in data_unit_id order (scalar values only)."""
    query = select(records.c.data_unit_id, records.c.data).where(records.c.schema_id == schema_id)
    if after is not None:
        query = query.where(records.c.data_unit_id > after)
    rows = session.connection().execute(query.order_by(records.c.data_unit_id).limit(limit))
    return [(duid, data) for duid, data in rows]


def count_records(session: Session, schema_id: int) -> int:
    return int(
        session.connection()
        .execute(select(func.count()).select_from(records).where(records.c.schema_id == schema_id))
        .scalar_one()
    )


# --- schema-change support: scanning, repairing and purging stored values -----


def _json_path(key: str) -> str:
    # Key names cannot contain '"' or '\\' (see domain.names), so quoting is safe.
    return f'$."{key}"'


def _has_key(session: Session, key: str, param: str) -> tuple[ColumnElement[bool], dict[str, str]]:
    if is_postgresql(session):
        return text(f"metadata_records.data ? :{param}"), {param: key}  # type: ignore[return-value]
    return (
        text(f"json_type(metadata_records.data, :{param}) IS NOT NULL"),  # type: ignore[return-value]
        {param: _json_path(key)},
    )


# Up to this many keys, a SQLite scan looks each key up by its path in every record;
# beyond, it lists each record's keys once and probes them against the wanted keys,
# bound as one JSON parameter. One OR term per key cannot serve every schema: SQLite
# refuses expression trees deeper than 1000 ("Expression tree is too large"), and
# from about ten keys the listing is faster anyway (measured: with 1024 keys, 30 ms
# instead of 60 ms over 20,000 records of 10 keys; with one key, 13 ms instead of 24).
# PostgreSQL tests all keys at once with `?|`, as fast as `?` even for one key.
KEYS_LOOKED_UP_BY_PATH = 8


def _holds_any(session: Session, keys: Sequence[str]) -> ColumnElement[bool]:
    """Records whose scalar JSON has any of `keys`; its SQL does not grow with them."""
    if is_postgresql(session):
        condition = text("metadata_records.data ?| CAST(:held AS TEXT[])").bindparams(
            bindparam("held", list(keys), type_=postgresql.ARRAY(String))
        )
    elif len(keys) <= KEYS_LOOKED_UP_BY_PATH:
        paths = {f"k{number}": _json_path(key) for number, key in enumerate(keys)}
        return or_(*(
            text(f"json_type(metadata_records.data, :{param}) IS NOT NULL").bindparams(
                bindparam(param, path)
            )
            for param, path in paths.items()
        ))  # fmt: skip
    else:
        condition = text(
            "EXISTS (SELECT 1 FROM json_each(metadata_records.data) AS held "
            "WHERE held.key IN (SELECT value FROM json_each(:held)))"
        ).bindparams(bindparam("held", ids_parameter("sqlite", list(keys))))
    return condition  # type: ignore[return-value]


def _has_undeclared(session: Session, declared: frozenset[str]) -> ColumnElement[bool]:
    names = sorted(declared)
    if is_postgresql(session):
        condition = text(
            "EXISTS (SELECT 1 FROM jsonb_object_keys(metadata_records.data) AS k "
            "WHERE NOT (k = ANY(:declared)))"
        ).bindparams(declared=names)
    else:
        condition = text(
            "EXISTS (SELECT 1 FROM json_each(metadata_records.data) AS j "
            "WHERE j.key NOT IN (SELECT value FROM json_each(:declared)))"
        ).bindparams(bindparam("declared", ids_parameter("sqlite", names)))
    return condition  # type: ignore[return-value]


def scan_records(
    session: Session,
    schema_id: int,
    keys: Iterable[str],
    undeclared_outside: frozenset[str] | None,
    batch_size: int = 2000,
) -> Iterator[tuple[str, dict[str, object]]]:
    """(data_unit_id, scalar values) of records holding any of `keys` or an undeclared key.

    Ordered by data_unit_id, read in batches so large schemas stay in bounded memory.
    The statement has the same few terms for 1 key as for 1024 (see `_holds_any`).
    """
    conditions: list[ColumnElement[bool]] = []
    wanted = sorted(keys)
    if wanted:
        conditions.append(_holds_any(session, wanted))
    if undeclared_outside is not None:
        conditions.append(_has_undeclared(session, undeclared_outside))
    for rows in _batches_where(session, schema_id, conditions, batch_size):
        yield from ((duid, data) for duid, data in rows)


def _batches_where(
    session: Session, schema_id: int, conditions: Sequence[ColumnElement[bool]], batch_size: int
) -> Iterator[Sequence[Any]]:
    """(data_unit_id, data) rows of the records matching any of `conditions`, in
    data_unit_id order, `batch_size` per statement; nothing when there is no condition."""
    if not conditions:
        return
    after = ""
    connection = session.connection()
    while True:
        rows = connection.execute(
            select(records.c.data_unit_id, records.c.data)
            .where(records.c.schema_id == schema_id, records.c.data_unit_id > after)
            .where(or_(*conditions))
            .order_by(records.c.data_unit_id)
            .limit(batch_size)
        ).all()
        yield rows
        if len(rows) < batch_size:
            return
        after = rows[-1][0]


def _lacks_any(session: Session, keys: Sequence[str], embedded: bool) -> ColumnElement[bool]:
    """Records without a value of at least one of `keys`: in their scalar JSON or, for
    embedding keys (`embedded`), in the embeddings table. One term, whatever the count."""
    name = "lacked_vectors" if embedded else "lacked"
    if is_postgresql(session):
        listed = bindparam(name, list(keys), type_=postgresql.ARRAY(String))
        if not embedded:
            return text(f"NOT (metadata_records.data ?& CAST(:{name} AS TEXT[]))").bindparams(  # type: ignore[return-value]
                listed
            )
        among = f"= ANY(CAST(:{name} AS TEXT[]))"
    else:
        listed = bindparam(name, ids_parameter("sqlite", list(keys)))
        among = f"IN (SELECT value FROM json_each(:{name}))"
    source = (
        "metadata_embeddings AS held WHERE held.schema_id = metadata_records.schema_id "
        "AND held.data_unit_id = metadata_records.data_unit_id AND"
        if embedded
        else "json_each(metadata_records.data) AS held WHERE"
    )
    count = bindparam(f"{name}_count", len(keys), type_=Integer)
    return text(  # type: ignore[return-value]
        f"(SELECT count(*) FROM {source} held.key {among}) < :{name}_count"
    ).bindparams(listed, count)


def scan_lacking(
    session: Session,
    schema_id: int,
    keys: Mapping[str, bool],
    batch_size: int = 2000,
) -> Iterator[tuple[str, list[str]]]:
    """(data_unit_id, the `keys` it has no value of) for each record lacking any of them,
    in data_unit_id order. `keys` maps each key to whether it is an embedding key."""
    scalars = sorted(k for k, embedded in keys.items() if not embedded)
    vectors = sorted(k for k, embedded in keys.items() if embedded)
    conditions = [_lacks_any(session, group, embedded)
                  for group, embedded in ((scalars, False), (vectors, True)) if group]  # fmt: skip
    for rows in _batches_where(session, schema_id, conditions, batch_size):
        held = embedding_keys_of(session, schema_id, [r[0] for r in rows]) if vectors else {}
        for duid, data in rows:
            present = held.get(duid, set())
            lacking = [k for k in scalars if k not in data] + [
                k for k in vectors if k not in present
            ]
            yield duid, sorted(lacking)


def _touch(version: int) -> dict[str, Any]:
    """Column values for a record changed by the schema change that creates `version`.

    A record touched several times by one schema change (two purged keys, a purge
    and a repair) gains one revision, not several: records already stamped with
    the new version were touched by this very transaction.
    """
    return {
        "revision": case(
            (records.c.schema_version == version, records.c.revision),
            else_=records.c.revision + 1,
        ),
        "schema_version": version,
    }


def rewrite_scalars(
    session: Session,
    schema_id: int,
    changed: Sequence[tuple[str, str]],
    now: datetime,
    version: int,
) -> None:
    """Replace the scalar JSON of records repaired by the schema change to `version`."""
    if not changed:
        return
    session.connection().execute(
        update(records)
        .where(
            records.c.schema_id == bindparam("b_schema_id"),
            records.c.data_unit_id == bindparam("b_data_unit_id"),
        )
        .values(data=bindparam("b_data"), updated_at=bindparam("b_updated_at"), **_touch(version)),
        [
            {"b_schema_id": schema_id, "b_data_unit_id": duid, "b_data": data, "b_updated_at": now}
            for duid, data in changed
        ],
    )


def count_with_key(session: Session, schema_id: int, key: str) -> int:
    """How many records hold a value of `key` (scalar or embedding)."""
    held, params = _has_key(session, key, "key")
    connection = session.connection()
    scalars = connection.execute(
        select(func.count()).select_from(records).where(records.c.schema_id == schema_id, held),
        params,
    ).scalar_one()
    vectors = connection.execute(
        select(func.count())
        .select_from(embeddings)
        .where(embeddings.c.schema_id == schema_id, embeddings.c.key == key)
    ).scalar_one()
    return int(scalars) + int(vectors)


def purge_key(session: Session, schema_id: int, key: str, now: datetime, version: int) -> int:
    """Remove every stored value of `key` (schema change to `version`); returns the count."""
    connection = session.connection()
    held, params = _has_key(session, key, "key")
    if is_postgresql(session):
        remove = text("metadata_records.data - CAST(:key AS TEXT)")
    else:
        remove = text("json_remove(metadata_records.data, :key)")
        params = {"key": _json_path(key)}
    scalars = connection.execute(
        update(records)
        .where(records.c.schema_id == schema_id, held)
        .values(data=remove, updated_at=now, **_touch(version)),
        params,
    )
    with_vector = select(embeddings.c.data_unit_id).where(
        embeddings.c.schema_id == schema_id, embeddings.c.key == key
    )
    vectors = connection.execute(
        update(records)
        .where(records.c.schema_id == schema_id, records.c.data_unit_id.in_(with_vector))
        .values(updated_at=now, **_touch(version))
    )
    connection.execute(
        delete(embeddings).where(embeddings.c.schema_id == schema_id, embeddings.c.key == key)
    )
    return int(scalars.rowcount) + int(vectors.rowcount)
