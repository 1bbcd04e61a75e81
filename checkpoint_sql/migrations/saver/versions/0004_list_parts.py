"""Lists stored element by element: a ``parts`` table and the blobs' ``manifest``.

A blob row whose ``manifest`` is NULL holds its value whole, as every row written
before this revision does; those keep reading as they always did, and new writes cut
msgpack arrays into parts (`checkpoint_sql.elements`).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_sql import dialects

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional (see 0001). SQLite's is, and has
    # no ADD COLUMN IF NOT EXISTS.
    transactional = op.get_bind().dialect.name == "sqlite"
    op.add_column(
        f"{prefix}blobs",
        sa.Column("manifest", dialects.payload(), nullable=True),
        schema=schema,
        if_not_exists=None if transactional else True,
    )
    op.create_table(
        f"{prefix}parts",
        sa.Column("thread_key", dialects.key_bytes(), nullable=False),
        sa.Column("ns_key", dialects.key_bytes(), nullable=False),
        sa.Column("digest", dialects.key_bytes(), nullable=False),
        sa.Column("data", dialects.payload(), nullable=False),
        sa.PrimaryKeyConstraint("thread_key", "ns_key", "digest", name=f"{prefix}parts_pkey"),
        schema=schema,
        if_not_exists=True,
    )


def downgrade(prefix: str, schema: str | None) -> None:
    op.drop_table(f"{prefix}parts", schema=schema)
    op.drop_column(f"{prefix}blobs", "manifest", schema=schema)
