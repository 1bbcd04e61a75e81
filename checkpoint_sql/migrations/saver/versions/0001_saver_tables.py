"""The checkpoint saver's tables: checkpoints, blobs, writes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_sql.dialects import columns as dialects

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional, so a process killed half-way
    # through this revision leaves some tables behind for the next setup() to pass.
    op.create_table(
        f"{prefix}checkpoints",
        sa.Column("thread_key", dialects.key_bytes(), nullable=False),
        sa.Column("ns_key", dialects.key_bytes(), nullable=False),
        sa.Column("checkpoint_id", dialects.ascii_key(64), nullable=False),
        sa.Column("thread_id", dialects.long_text(), nullable=False),
        sa.Column("checkpoint_ns", dialects.long_text(), nullable=False),
        sa.Column("parent_checkpoint_id", dialects.ascii_key(64), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("checkpoint", dialects.payload(), nullable=False),
        sa.Column("metadata", dialects.JSONDocument(), nullable=False),
        sa.Column("versions", dialects.JSONDocument(), nullable=False),
        sa.Column("run_id", dialects.unicode_key(255), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("thread_key", "ns_key", "checkpoint_id", name=f"{prefix}checkpoints_pkey"),
        schema=schema,
        if_not_exists=True,
    )
    op.create_index(
        f"{prefix}checkpoints_run_id_idx", f"{prefix}checkpoints", ["run_id"], schema=schema, if_not_exists=True
    )
    op.create_table(
        f"{prefix}blobs",
        sa.Column("thread_key", dialects.key_bytes(), nullable=False),
        sa.Column("ns_key", dialects.key_bytes(), nullable=False),
        sa.Column("channel", dialects.unicode_key(255), nullable=False),
        sa.Column("version", dialects.ascii_key(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("blob", dialects.payload(), nullable=True),
        sa.PrimaryKeyConstraint("thread_key", "ns_key", "channel", "version", name=f"{prefix}blobs_pkey"),
        schema=schema,
        if_not_exists=True,
    )
    op.create_table(
        f"{prefix}writes",
        sa.Column("thread_key", dialects.key_bytes(), nullable=False),
        sa.Column("ns_key", dialects.key_bytes(), nullable=False),
        sa.Column("checkpoint_id", dialects.ascii_key(64), nullable=False),
        sa.Column("task_id", dialects.unicode_key(255), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", dialects.unicode_key(255), nullable=False),
        sa.Column("task_path", dialects.long_text(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("blob", dialects.payload(), nullable=True),
        sa.PrimaryKeyConstraint("thread_key", "ns_key", "checkpoint_id", "task_id", "idx", name=f"{prefix}writes_pkey"),
        schema=schema,
        if_not_exists=True,
    )


def downgrade(prefix: str, schema: str | None) -> None:
    for table in ("writes", "blobs", "checkpoints"):
        op.drop_table(f"{prefix}{table}", schema=schema)
