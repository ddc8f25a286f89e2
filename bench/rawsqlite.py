"""The raw SQLite ceiling: plain sqlite3.executemany of the rows the server would write.

The file is migrated with metareg's own migrations, so the tables, keys,
indexes and foreign keys are the server's. The rows are exactly what
`storage.records.write_records` stores for a new record: the JSON text that
`domain.validator.encode_record` makes from the validated (normalised) values,
float32 embedding blobs in their own table, revision 1, the schema version and
`updated_at` in SQLAlchemy's SQLite text form. Connection settings are the
server's (WAL, synchronous=NORMAL, foreign_keys=ON) and each 1000-row bundle is
one BEGIN IMMEDIATE ... COMMIT transaction.

Rows are prepared before the clock starts: the ceiling is what the database
itself can absorb, with no validation, encoding or RPC.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from metareg.server.domain.validator import encode_record
from metareg.server.storage.database import Database
from metareg.server.storage.migrate import upgrade

from . import workload
from .stats import Timing
from .validation import metareg_validator

SCHEMA_ID = 1
SCHEMA_VERSION = 1
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000")
INSERT_RECORD = (
    "INSERT INTO metadata_records "
    "(schema_id, data_unit_id, data, schema_version, revision, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_EMBEDDING = (
    "INSERT INTO metadata_embeddings (schema_id, data_unit_id, key, vector) VALUES (?, ?, ?, ?)"
)

RecordRow = tuple[int, str, str, int, int, str]
EmbeddingRow = tuple[int, str, str, bytes]


@dataclass(frozen=True)
class PreparedBundle:
    records: list[RecordRow]
    embeddings: list[EmbeddingRow]


def sqlite_timestamp(moment: datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a (UTC) datetime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def prepare_bundles(records: Sequence[workload.Record], bundle_size: int) -> list[PreparedBundle]:
    """The rows the server writes for `records`, one PreparedBundle per bundle."""
    validator = metareg_validator()
    now = sqlite_timestamp(datetime.now(UTC))
    bundles: list[PreparedBundle] = []
    for chunk in workload.chunks(records, bundle_size):
        rows: list[RecordRow] = []
        vectors: list[EmbeddingRow] = []
        for record in chunk:
            values, problems = validator.check(record.values)
            if problems:
                raise ValueError(f"{record.data_unit_id}: {problems[0].describe()}")
            encoded = encode_record(values)
            duid = record.data_unit_id
            rows.append((SCHEMA_ID, duid, encoded.scalars_json, SCHEMA_VERSION, 1, now))
            vectors.extend((SCHEMA_ID, duid, k, raw) for k, raw in encoded.embeddings.items())
        bundles.append(PreparedBundle(rows, vectors))
    return bundles


def migrated_template(path: Path) -> Path:
    """An empty SQLite file at metareg's latest migration, holding the benchmark schema row."""
    database = Database(f"sqlite:///{path}")
    try:
        upgrade(database)
    finally:
        database.dispose()
    connection = sqlite3.connect(path)
    try:
        now = sqlite_timestamp(datetime.now(UTC))
        with connection:
            connection.execute(
                "INSERT INTO schemas (id, name, latest_version, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (SCHEMA_ID, workload.SCHEMA_NAME, SCHEMA_VERSION, now, now),
            )
    finally:
        connection.close()
    return path


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        connection.execute(f"PRAGMA {pragma}")
    return connection


def insert_bundles(connection: sqlite3.Connection, bundles: Sequence[PreparedBundle]) -> None:
    for bundle in bundles:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(INSERT_RECORD, bundle.records)
        if bundle.embeddings:
            connection.executemany(INSERT_EMBEDDING, bundle.embeddings)
        connection.execute("COMMIT")


def measure_raw_ceiling(bundles: Sequence[PreparedBundle], workdir: Path, repeats: int) -> Timing:
    """Seconds to insert every bundle into a fresh copy of the migrated file, per repetition."""
    template = migrated_template(workdir / "raw-template.db")
    records = sum(len(b.records) for b in bundles)
    seconds: list[float] = []
    for repetition in range(repeats):
        path = workdir / f"raw-{repetition}.db"
        shutil.copyfile(template, path)
        connection = connect(path)
        try:
            started = time.perf_counter()
            insert_bundles(connection, bundles)
            seconds.append(time.perf_counter() - started)
        finally:
            connection.close()
        remove_sqlite_files(path)
    remove_sqlite_files(template)
    return Timing(records, tuple(seconds))


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
