"""An index on the checkpoints' creation time, for retention across all threads.

``checkpoint-sql prune --older-than 30d`` (and `SQLSaver.retain`) first asks which
threads hold a checkpoint older than the cutoff; without this index that is a scan
of every checkpoint row, each sweep.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional (see 0001).
    op.create_index(
        f"{prefix}checkpoints_created_us_idx",
        f"{prefix}checkpoints",
        ["created_us"],
        schema=schema,
        if_not_exists=True,
    )


def downgrade(prefix: str, schema: str | None) -> None:
    op.drop_index(f"{prefix}checkpoints_created_us_idx", f"{prefix}checkpoints", schema=schema)
