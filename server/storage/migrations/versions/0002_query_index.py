"""Query index tables: one entry per indexed key and record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

C_STRING = sa.String(length=256).with_variant(sa.String(length=256, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "metadata_index_number",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("data_unit_id", C_STRING, nullable=False),
        sa.PrimaryKeyConstraint(
            "schema_id", "key", "value", "data_unit_id", name=op.f("pk_metadata_index_number")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metadata_index_string",
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", C_STRING, nullable=False),
        sa.Column("data_unit_id", C_STRING, nullable=False),
        sa.PrimaryKeyConstraint(
            "schema_id", "key", "value", "data_unit_id", name=op.f("pk_metadata_index_string")
        ),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("metadata_index_string")
    op.drop_table("metadata_index_number")
