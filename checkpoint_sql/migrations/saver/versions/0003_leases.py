"""A lease table, so that replicas running the retention sweeper take turns.

One row per kind of job (``retention``): who holds the lease and until when, on the
database server's clock. See `checkpoint_sql.core.leases`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_sql.dialects import columns as dialects

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional (see 0001).
    op.create_table(
        f"{prefix}leases",
        sa.Column("name", dialects.ascii_key(64), nullable=False),
        sa.Column("holder", dialects.unicode_key(255), nullable=False),
        sa.Column("acquired_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=f"{prefix}leases_pkey"),
        schema=schema,
        if_not_exists=True,
    )


def downgrade(prefix: str, schema: str | None) -> None:
    op.drop_table(f"{prefix}leases", schema=schema)
