"""The companion stores' tables, as SQLAlchemy Core metadata.

All of them live beside the saver's, under the same prefix, and are created by their
own migration history (component ``stores``, version table
``<prefix>alembic_version_stores``), so setting up the saver never creates them and
setting up a store never touches the saver's tables.

Everything a caller names with free text (namespaces, item keys, app, user and session
ids, state keys, turn ids, memory types) is keyed by a 16-byte hash of that text
(`ids.key_of`): ids of any length then fit in an index on every engine, and equality is
exact bytes, free of collations and of MySQL's trailing-space rule. The text itself is
kept in unindexed columns for reading back.

* ``store_items`` / ``store_vectors``: `SQLStore`, LangGraph's long-term memory. A
  namespace is kept three ways: its labels as UTF-8 joined by ``\\x01`` (which sorts
  below every other character, so byte order is LangGraph's tuple order), the first
  `NS_HEAD` bytes of that (indexed: prefix searches are range scans), and the labels as
  a JSON array (wildcard and suffix matching by position).
* ``sessions`` / ``session_events`` / ``session_app_state`` / ``session_user_state`` /
  ``session_summaries`` / ``session_usage``: `SessionStore`. An event's position is its
  per-session sequence number, the optimistic-concurrency version of the session row.
* ``short_memory``: `ShortMemoryStore`.
* ``store_leases``: who runs the TTL sweep now, so replicas take turns
  (`checkpoint_sql.core.leases`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from checkpoint_sql.core.migrate import MigrationTarget
from checkpoint_sql.core.tables import check_prefix, lease_table
from checkpoint_sql.dialects.columns import (
    JSONDocument,
    UTCDateTime,
    Vector,
    key_bytes,
    long_text,
    payload,
    short_bytes,
    unicode_key,
)

NS_HEAD = 512
"""Bytes of a namespace kept in its indexed column; longer namespaces are matched on the
head first, then on their labels."""
EVENT_TYPE_MAX = 64
EVENT_ID_MAX = 128


@dataclass(frozen=True)
class StoreTables:
    """The companion stores' tables, bound to one prefix and schema."""

    metadata: sa.MetaData
    items: sa.Table
    vectors: sa.Table
    sessions: sa.Table
    events: sa.Table
    app_state: sa.Table
    user_state: sa.Table
    summaries: sa.Table
    usage: sa.Table
    short_memory: sa.Table
    prefix: str
    schema: str | None
    leases: sa.Table

    @property
    def migrations(self) -> MigrationTarget:
        return MigrationTarget("stores", self.prefix, self.schema, self.metadata)


def _key(name: str, *, primary_key: bool = False) -> sa.Column[bytes]:
    return sa.Column(name, key_bytes(), nullable=False, primary_key=primary_key)


def _time(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def _scoped_state(md: sa.MetaData, name: str, owner_key: str) -> sa.Table:
    """State shared by every session of one app, or of one user (``app:``/``user:`` keys)."""
    return sa.Table(
        name,
        md,
        _key(owner_key, primary_key=True),
        _key("state_key", primary_key=True),
        sa.Column("key", long_text(), nullable=False),
        sa.Column("value", JSONDocument(), nullable=True),
        _time("updated_at"),
    )


def store_tables(prefix: str, schema: str | None = None) -> StoreTables:
    """Build the table metadata for `prefix` and `schema`."""
    check_prefix(prefix)
    md = sa.MetaData(schema=schema)
    text = long_text
    items = sa.Table(
        f"{prefix}store_items",
        md,
        _key("item_id", primary_key=True),
        sa.Column("namespace", payload(), nullable=False),
        sa.Column("ns_head", short_bytes(NS_HEAD), nullable=False),
        sa.Column("labels", JSONDocument(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("value", JSONDocument(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("expires_at", nullable=True),
        sa.Column("ttl_minutes", sa.Double(), nullable=True),
        sa.Index(f"{prefix}store_items_ns_idx", "ns_head"),
        sa.Index(f"{prefix}store_items_expires_idx", "expires_at"),
    )
    vectors = sa.Table(
        f"{prefix}store_vectors",
        md,
        _key("item_id", primary_key=True),
        sa.Column("field_no", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("field", text(), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("norm", sa.Double(), nullable=False),
    )
    sessions = sa.Table(
        f"{prefix}sessions",
        md,
        _key("session_key", primary_key=True),
        _key("app_key"),
        _key("user_key"),
        sa.Column("app_name", text(), nullable=False),
        sa.Column("user_id", text(), nullable=False),
        sa.Column("session_id", text(), nullable=False),
        sa.Column("state", JSONDocument(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.Index(f"{prefix}sessions_app_idx", "app_key", "updated_at"),
        sa.Index(f"{prefix}sessions_user_idx", "user_key", "updated_at"),
        sa.Index(f"{prefix}sessions_updated_idx", "updated_at"),
    )
    events = sa.Table(
        f"{prefix}session_events",
        md,
        _key("session_key", primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", unicode_key(EVENT_ID_MAX), nullable=False),
        sa.Column("author", text(), nullable=False),
        sa.Column("type", unicode_key(EVENT_TYPE_MAX), nullable=False),
        sa.Column("turn_key", key_bytes(), nullable=True),
        sa.Column("turn_id", text(), nullable=True),
        sa.Column("content", JSONDocument(), nullable=True),
        sa.Column("state_delta", JSONDocument(), nullable=False),
        _time("created_at"),
    )
    app_state = _scoped_state(md, f"{prefix}session_app_state", "app_key")
    user_state = _scoped_state(md, f"{prefix}session_user_state", "user_key")
    summaries = sa.Table(
        f"{prefix}session_summaries",
        md,
        _key("session_key", primary_key=True),
        _key("filter_hash", primary_key=True),
        sa.Column("filter_key", text(), nullable=False),
        sa.Column("summary", text(), nullable=False),
        sa.Column("topics", JSONDocument(), nullable=False),
        _time("updated_at"),
    )
    usage = sa.Table(
        f"{prefix}session_usage",
        md,
        _key("session_key", primary_key=True),
        _key("turn_key", primary_key=True),
        sa.Column("turn_id", text(), nullable=False),
        sa.Column("model", text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
    )
    short_memory = sa.Table(
        f"{prefix}short_memory",
        md,
        _key("entry_id", primary_key=True),
        _key("type_key"),
        sa.Column("memory_type", text(), nullable=False),
        sa.Column("key", text(), nullable=False),
        sa.Column("value", JSONDocument(), nullable=True),
        _time("expires_at"),
        sa.Index(f"{prefix}short_memory_type_idx", "type_key", "expires_at"),
        sa.Index(f"{prefix}short_memory_expires_idx", "expires_at"),
    )
    return StoreTables(
        md,
        items,
        vectors,
        sessions,
        events,
        app_state,
        user_state,
        summaries,
        usage,
        short_memory,
        prefix,
        schema,
        lease_table(md, f"{prefix}store_leases"),
    )
