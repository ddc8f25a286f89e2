"""SQLAlchemy models. Rows never leave the storage package: repositories return domain objects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import JsonText, UTCDateTime

# Byte order (= code point order) for ids and indexed strings on every backend,
# so keyset pagination, index walks and in-memory sorts agree. SQLite's default
# BINARY collation already is.
DataUnitId = String(256).with_variant(String(256, collation="C"), "postgresql")
IndexedText = String(256).with_variant(String(256, collation="C"), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SchemaRow(Base):
    """One named schema; `latest_version` is 0 until its first version is saved."""

    __tablename__ = "schemas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchemaVersionRow(Base):
    """An immutable schema version: the full key state plus a summary of its changes."""

    __tablename__ = "schema_versions"

    schema_id: Mapped[int] = mapped_column(
        ForeignKey("schemas.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    changes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecordRow(Base):
    """One data unit's metadata: scalar values as JSON, embeddings in RecordEmbeddingRow."""

    __tablename__ = "metadata_records"

    schema_id: Mapped[int] = mapped_column(
        ForeignKey("schemas.id", ondelete="CASCADE"), primary_key=True
    )
    data_unit_id: Mapped[str] = mapped_column(DataUnitId, primary_key=True)
    data: Mapped[dict[str, object]] = mapped_column(JsonText)
    schema_version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecordEmbeddingRow(Base):
    """One embedding value, stored as little-endian float32 bytes."""

    __tablename__ = "metadata_embeddings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["schema_id", "data_unit_id"],
            ["metadata_records.schema_id", "metadata_records.data_unit_id"],
            ondelete="CASCADE",
            name="fk_metadata_embeddings_record",
        ),
        Index("ix_metadata_embeddings_schema_key", "schema_id", "key"),
    )

    schema_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_unit_id: Mapped[str] = mapped_column(DataUnitId, primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IdempotencyRow(Base):
    """The stored result of a bundle applied under an idempotency key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    schema_id: Mapped[int] = mapped_column(
        ForeignKey("schemas.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IndexNumberRow(Base):
    """Query index entries of number and boolean keys (booleans as 0 and 1).

    The primary key is the index: (schema, key, value, data unit). On SQLite the
    table is WITHOUT ROWID, so each entry is stored once.
    """

    __tablename__ = "metadata_index_number"
    __table_args__ = {"sqlite_with_rowid": False}

    schema_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[float] = mapped_column(Double, primary_key=True)
    data_unit_id: Mapped[str] = mapped_column(DataUnitId, primary_key=True)


class IndexStringRow(Base):
    """Query index entries of string-valued keys, cut to their first 256 characters."""

    __tablename__ = "metadata_index_string"
    __table_args__ = {"sqlite_with_rowid": False}

    schema_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(IndexedText, primary_key=True)
    data_unit_id: Mapped[str] = mapped_column(DataUnitId, primary_key=True)


class ApiKeyRow(Base):
    """An API key: its role, the schemas it covers, and the hash of its token (never the
    token). Keys are revoked, never deleted, so that enforcement can never switch off."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # JSON list of schema-name globs; [] covers every schema.
    schemas: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEventRow(Base):
    """One change, recorded in the transaction that made it."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_schema_name", "schema_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_name: Mapped[str] = mapped_column(String(64))
    peer: Mapped[str] = mapped_column(String(256))
    rpc: Mapped[str] = mapped_column(String(128))
    # None for events that concern no schema (API keys).
    schema_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    summary: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
