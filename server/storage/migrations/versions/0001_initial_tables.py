"""Initial tables: schemas, versions, records, embeddings, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON_TEXT = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
DATA_UNIT_ID = sa.String(length=256).with_variant(
    sa.String(length=256, collation="C"), "postgresql"
)


def upgrade() -> None:
    op.create_table(
        "schemas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schemas")),
        sa.UniqueConstraint("name", name=op.f("uq_schemas_name")),
    )
    op.create_table(
        "schema_versions",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id"],
            ["schemas.id"],
            name=op.f("fk_schema_versions_schema_id_schemas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_id", "version", name=op.f("pk_schema_versions")),
    )
    op.create_table(
        "metadata_records",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("data_unit_id", DATA_UNIT_ID, nullable=False),
        sa.Column("data", JSON_TEXT, nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id"],
            ["schemas.id"],
            name=op.f("fk_metadata_records_schema_id_schemas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_id", "data_unit_id", name=op.f("pk_metadata_records")),
    )
    op.create_table(
        "metadata_embeddings",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("data_unit_id", DATA_UNIT_ID, nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id", "data_unit_id"],
            ["metadata_records.schema_id", "metadata_records.data_unit_id"],
            name="fk_metadata_embeddings_record",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "schema_id", "data_unit_id", "key", name=op.f("pk_metadata_embeddings")
        ),
    )
    op.create_index(
        "ix_metadata_embeddings_schema_key", "metadata_embeddings", ["schema_id", "key"]
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id"],
            ["schemas.id"],
            name=op.f("fk_idempotency_keys_schema_id_schemas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schema_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("metadata_embeddings")
    op.drop_table("metadata_records")
    op.drop_table("schema_versions")
    op.drop_table("schemas")
