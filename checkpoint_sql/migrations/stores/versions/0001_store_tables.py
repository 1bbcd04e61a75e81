"""The companion stores' tables: long-term memory items and vectors, sessions with their
events, scoped state, summaries and usage, and short-lived memory.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from checkpoint_sql.dialects import columns as dialects

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (
    "store_items",
    "store_vectors",
    "sessions",
    "session_events",
    "session_app_state",
    "session_user_state",
    "session_summaries",
    "session_usage",
    "short_memory",
)


def _key(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, dialects.key_bytes(), nullable=nullable)


def _time(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, dialects.UTCDateTime(), nullable=nullable)


def upgrade(prefix: str, schema: str | None) -> None:
    # IF NOT EXISTS: MySQL's DDL is not transactional, so a process killed half-way
    # through this revision leaves some tables behind for the next setup() to pass.
    text = dialects.long_text

    def table(name: str, *columns: Any) -> None:
        op.create_table(f"{prefix}{name}", *columns, schema=schema, if_not_exists=True)

    def index(name: str, table_name: str, *columns: str) -> None:
        op.create_index(f"{prefix}{name}", f"{prefix}{table_name}", list(columns), schema=schema, if_not_exists=True)

    table(
        "store_items",
        _key("item_id"),
        sa.Column("namespace", dialects.payload(), nullable=False),
        sa.Column("ns_head", dialects.short_bytes(512), nullable=False),
        sa.Column("labels", dialects.JSONDocument(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("value", dialects.JSONDocument(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("expires_at", nullable=True),
        sa.Column("ttl_minutes", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("item_id", name=f"{prefix}store_items_pkey"),
    )
    index("store_items_ns_idx", "store_items", "ns_head")
    index("store_items_expires_idx", "store_items", "expires_at")
    table(
        "store_vectors",
        _key("item_id"),
        sa.Column("field_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("field", text(), nullable=False),
        sa.Column("embedding", dialects.Vector(), nullable=False),
        sa.Column("norm", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "field_no", name=f"{prefix}store_vectors_pkey"),
    )
    table(
        "sessions",
        _key("session_key"),
        _key("app_key"),
        _key("user_key"),
        sa.Column("app_name", text(), nullable=False),
        sa.Column("user_id", text(), nullable=False),
        sa.Column("session_id", text(), nullable=False),
        sa.Column("state", dialects.JSONDocument(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("session_key", name=f"{prefix}sessions_pkey"),
    )
    index("sessions_app_idx", "sessions", "app_key", "updated_at")
    index("sessions_user_idx", "sessions", "user_key", "updated_at")
    index("sessions_updated_idx", "sessions", "updated_at")
    table(
        "session_events",
        _key("session_key"),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", dialects.unicode_key(128), nullable=False),
        sa.Column("author", text(), nullable=False),
        sa.Column("type", dialects.unicode_key(64), nullable=False),
        _key("turn_key", nullable=True),
        sa.Column("turn_id", text(), nullable=True),
        sa.Column("content", dialects.JSONDocument(), nullable=True),
        sa.Column("state_delta", dialects.JSONDocument(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("session_key", "seq", name=f"{prefix}session_events_pkey"),
    )
    for scope, owner in (("app", "app_key"), ("user", "user_key")):
        table(
            f"session_{scope}_state",
            _key(owner),
            _key("state_key"),
            sa.Column("key", text(), nullable=False),
            sa.Column("value", dialects.JSONDocument(), nullable=True),
            _time("updated_at"),
            sa.PrimaryKeyConstraint(owner, "state_key", name=f"{prefix}session_{scope}_state_pkey"),
        )
    table(
        "session_summaries",
        _key("session_key"),
        _key("filter_hash"),
        sa.Column("filter_key", text(), nullable=False),
        sa.Column("summary", text(), nullable=False),
        sa.Column("topics", dialects.JSONDocument(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("session_key", "filter_hash", name=f"{prefix}session_summaries_pkey"),
    )
    table(
        "session_usage",
        _key("session_key"),
        _key("turn_key"),
        sa.Column("turn_id", text(), nullable=False),
        sa.Column("model", text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("session_key", "turn_key", name=f"{prefix}session_usage_pkey"),
    )
    table(
        "short_memory",
        _key("entry_id"),
        _key("type_key"),
        sa.Column("memory_type", text(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("value", dialects.JSONDocument(), nullable=True),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("entry_id", name=f"{prefix}short_memory_pkey"),
    )
    index("short_memory_type_idx", "short_memory", "type_key", "expires_at")
    index("short_memory_expires_idx", "short_memory", "expires_at")


def downgrade(prefix: str, schema: str | None) -> None:
    for name in reversed(TABLES):
        op.drop_table(f"{prefix}{name}", schema=schema)
