"""Parquet metadata files: write records one row group at a time, read them back streaming.

A file has a `data_unit_id` string column and one column per schema key, typed by the
key's type: varchar, text, enum and uuid are strings, number float64, boolean bool,
datetime a UTC timestamp (microseconds), embedding list<float32>. A key of any other
type is a string column holding each value as JSON (its field is marked
`metareg.json` so `read_parquet` decodes it again). A null cell is an absent key.

Memory stays flat: `write_parquet` holds one row group of records, `read_parquet` one
batch of rows. pyarrow is the `[parquet]` extra and is imported only when a function
here is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from ._errors import DataFileError
from ._query import DEFAULT_QUERY_PAGE_SIZE
from ._source import ID_COLUMN, SourceRecord
from ._values import as_pairs

DEFAULT_ROW_GROUP_SIZE = DEFAULT_QUERY_PAGE_SIZE
"""Rows per row group: one query page."""
READ_BATCH_ROWS = 1000
JSON_FIELD = b"metareg.json"
"""Field metadata marking a string column whose cells are JSON values."""
STRING_TYPES = frozenset({"varchar", "text", "enum", "uuid"})


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or a DataFileError saying how to install them."""
    try:
        import pyarrow  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise DataFileError("Parquet files need pyarrow: pip install 'metareg[parquet]'") from None
    return pyarrow, pyarrow.parquet


def _arrow_type(pa: Any, key_type: str) -> Any:
    if key_type in STRING_TYPES:
        return pa.string()
    if key_type == "number":
        return pa.float64()
    if key_type == "boolean":
        return pa.bool_()
    if key_type == "datetime":
        return pa.timestamp("us", tz="UTC")
    if key_type == "embedding":
        return pa.list_(pa.float32())
    return pa.string()


def parquet_schema(key_types: Mapping[str, str]) -> Any:
    """The Arrow schema of a file holding these keys (key -> schema type), in that order."""
    pa, _ = _pyarrow()
    fields = [pa.field(ID_COLUMN, pa.string(), nullable=False)]
    for key, key_type in key_types.items():
        if key == ID_COLUMN:
            raise DataFileError(f'a key named "{ID_COLUMN}" cannot be a Parquet column')
        metadata = {JSON_FIELD: b"true"} if _is_json_type(key_type) else None
        fields.append(pa.field(key, _arrow_type(pa, key_type), metadata=metadata))
    return pa.schema(fields)


def _datetime(text: object) -> object:
    """A stored datetime (ISO 8601 text) as an aware datetime for a timestamp cell."""
    if not isinstance(text, str):
        return text  # pyarrow reports what is wrong with it
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_cell(value: object) -> object:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _columns(
    page: list[tuple[str, Mapping[str, object]]], key_types: Mapping[str, str]
) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {ID_COLUMN: [data_unit_id for data_unit_id, _ in page]}
    for key, key_type in key_types.items():
        cells = [metadata.get(key) for _, metadata in page]
        if key_type == "datetime":
            cells = [None if c is None else _datetime(c) for c in cells]
        elif _is_json_type(key_type):
            cells = [_json_cell(c) for c in cells]
        columns[key] = cells
    for data_unit_id, metadata in page:
        extra = metadata.keys() - key_types.keys()
        if extra:
            raise DataFileError(
                f'record "{data_unit_id}" has key(s) {", ".join(sorted(extra))} that are not '
                "columns of the file (only the schema's keys are): export it as JSONL"
            )
    return columns


def _is_json_type(key_type: str) -> bool:
    return key_type not in STRING_TYPES | {"number", "boolean", "datetime", "embedding"}


def write_parquet(
    path: str | os.PathLike[str],
    schema_key_types: Mapping[str, str],
    records_iterable: Iterable[Any],
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> int:
    """Write records as a Parquet file, one row group per `row_group_size` records.

    `schema_key_types` maps each key (a column, in this order) to its schema type.
    `records_iterable` yields StoredRecords (what `Client.query` yields),
    (data_unit_id, metadata) pairs or {"data_unit_id", "metadata"} objects; it is read
    one row group at a time. A record holding a key that is not a column raises
    DataFileError. Returns the number of records written.
    """
    if isinstance(row_group_size, bool) or row_group_size < 1:
        raise ValueError(f"row_group_size must be a positive number, not {row_group_size!r}")
    pa, pq = _pyarrow()
    schema = parquet_schema(schema_key_types)
    written = 0
    pairs = iter(as_pairs(records_iterable))
    try:
        writer = pq.ParquetWriter(os.fspath(path), schema)
    except OSError as error:
        raise DataFileError(f"{path}: cannot write the file: {error}") from None
    with writer:
        while page := list(islice(pairs, row_group_size)):
            columns = _columns(page, schema_key_types)
            try:
                arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as error:
                raise DataFileError(
                    f"{path}: a value does not fit its column's type: {error}"
                ) from None
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            written += len(page)
    return written


def _stored_datetime(moment: datetime) -> str:
    """The client's (and server's) form of a datetime: UTC, microseconds, `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat("T", "microseconds")[:-6] + "Z"


def _reader(pa: Any, field: Any) -> Any:
    """How to turn one column of a batch into Python cells (None = null)."""
    kind = field.type
    if pa.types.is_timestamp(kind):
        target = pa.timestamp("us", tz="UTC")

        def timestamps(column: Any) -> list[object]:
            # Nanoseconds are dropped, as the server drops digits past the microsecond.
            cells = column.cast(target, safe=False).to_pylist()
            return [None if c is None else _stored_datetime(c) for c in cells]

        return timestamps
    if (field.metadata or {}).get(JSON_FIELD) == b"true":

        def json_cells(column: Any) -> list[object]:
            return [None if c is None else json.loads(c) for c in column.to_pylist()]

        return json_cells
    return lambda column: column.to_pylist()


def count_rows(path: str | os.PathLike[str]) -> int:
    """The number of rows of a Parquet file, from its footer (no row is read)."""
    pa, pq = _pyarrow()
    try:
        with pq.ParquetFile(os.fspath(path)) as file:
            return int(file.metadata.num_rows)
    except (OSError, pa.ArrowException) as error:
        raise DataFileError(f"{path}: not a readable Parquet file: {error}") from None


def read_parquet(path: str | os.PathLike[str]) -> Iterator[SourceRecord]:
    """Stream the records of a Parquet file, one batch of rows at a time.

    Each row is a SourceRecord whose `line` is its 1-based row number; null cells are
    absent keys, timestamps become ISO 8601 UTC text (the form reads return), lists
    stay lists. A file that cannot be read, or has no `data_unit_id` column, raises
    DataFileError; a row without an id is a record with an `error`.
    """
    pa, pq = _pyarrow()
    try:
        file = pq.ParquetFile(os.fspath(path))
    except (OSError, pa.ArrowException) as error:
        raise DataFileError(f"{path}: not a readable Parquet file: {error}") from None
    with file:
        schema = file.schema_arrow
        if ID_COLUMN not in schema.names:
            raise DataFileError(f'{path}: the file has no "{ID_COLUMN}" column')
        duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
        if duplicates:
            raise DataFileError(f"{path}: column(s) {', '.join(duplicates)} appear twice")
        readers = [(field.name, _reader(pa, field)) for field in schema]
        row = 0
        try:
            for batch in file.iter_batches(batch_size=READ_BATCH_ROWS):
                columns = {name: read(batch.column(name)) for name, read in readers}
                ids = columns.pop(ID_COLUMN)
                for index, data_unit_id in enumerate(ids):
                    row += 1
                    metadata = {
                        name: cells[index]
                        for name, cells in columns.items()
                        if cells[index] is not None
                    }
                    if not isinstance(data_unit_id, str):
                        yield SourceRecord(row, "", metadata, '"data_unit_id" must be a string')
                        continue
                    yield SourceRecord(row, data_unit_id, metadata)
        except (OSError, pa.ArrowException) as error:
            raise DataFileError(f"{path}, after row {row}: cannot read the file: {error}") from None
        except json.JSONDecodeError as error:
            raise DataFileError(
                f"{path}, rows after {row}: a cell of a JSON column is not JSON: {error}"
            ) from None
