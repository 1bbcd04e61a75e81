"""The saver's tables, as SQLAlchemy Core metadata.

The tables, named with a prefix (``cpsql_`` by default) so they sit beside the
official savers' ``checkpoints``/``checkpoint_blobs``/``checkpoint_writes``/``writes``
and the host application's own tables:

* ``checkpoints``: one row per checkpoint; the checkpoint without its channel values
  and versions, serialized by the saver's serde; its channel versions as a JSON list of
  ``[channel, version]`` pairs, which SQL joins the blobs through; metadata as JSON;
  and a few promoted columns (parent, run id, creation time) that SQL filters on.
* ``blobs``: one row per (thread, namespace, channel, version). A value is written
  once, by the checkpoint whose put bumped that version; later checkpoints that did
  not change the channel point at the same row through their channel versions.
  A list the serializer wrote as a msgpack array is stored cut into its elements
  (`checkpoint_sql.saver.elements`): its row keeps the array header in ``blob`` and a
  manifest of the parts' digests in ``manifest``.
* ``parts``: the elements (and pages of digests) of such lists, each stored once per
  (thread, namespace, digest), so a new version of a growing list stores what it adds.
* ``writes``: pending writes. No foreign key to ``checkpoints``: LangGraph may commit
  the writes of step N+1 before the checkpoint they belong to.
* ``leases``: who runs the retention sweep now, so replicas take turns
  (`checkpoint_sql.core.leases`).

Threads and namespaces are keyed by a 16-byte hash of their text (see `ids.key_of`) so
that ids of any length fit in an index on every engine; the text itself is kept in
``checkpoints`` for listing. The migrations in `checkpoint_sql/migrations` create
exactly these tables (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from checkpoint_sql.core.ids import CHECKPOINT_ID_MAX
from checkpoint_sql.core.migrate import MigrationTarget
from checkpoint_sql.core.tables import DEFAULT_PREFIX, check_prefix, lease_table
from checkpoint_sql.dialects.columns import JSONDocument, ascii_key, key_bytes, long_text, payload, unicode_key

VERSION_MAX = 128
"""Longest channel version accepted; LangGraph's string versions are about 52 characters."""
NAME_MAX = 255
"""Longest channel name or task id accepted; they are keys, unlike thread ids."""
TYPE_MAX = 64
"""Longest serde type tag (e.g. ``msgpack+aes``)."""


@dataclass(frozen=True)
class SaverTables:
    """The saver's tables, bound to one prefix and schema."""

    metadata: sa.MetaData
    checkpoints: sa.Table
    blobs: sa.Table
    writes: sa.Table
    prefix: str
    schema: str | None
    leases: sa.Table
    parts: sa.Table

    @property
    def migrations(self) -> MigrationTarget:
        return MigrationTarget("saver", self.prefix, self.schema, self.metadata)


def saver_tables(prefix: str = DEFAULT_PREFIX, schema: str | None = None) -> SaverTables:
    """Build the table metadata for `prefix` and `schema`."""
    check_prefix(prefix)
    md = sa.MetaData(schema=schema)
    checkpoints = sa.Table(
        f"{prefix}checkpoints",
        md,
        sa.Column("thread_key", key_bytes(), primary_key=True),
        sa.Column("ns_key", key_bytes(), primary_key=True),
        sa.Column("checkpoint_id", ascii_key(CHECKPOINT_ID_MAX), primary_key=True),
        sa.Column("thread_id", long_text(), nullable=False),
        sa.Column("checkpoint_ns", long_text(), nullable=False),
        sa.Column("parent_checkpoint_id", ascii_key(CHECKPOINT_ID_MAX), nullable=True),
        sa.Column("type", sa.String(TYPE_MAX), nullable=False),
        sa.Column("checkpoint", payload(), nullable=False),
        sa.Column("metadata", JSONDocument(), nullable=False),
        sa.Column("versions", JSONDocument(), nullable=False),
        sa.Column("run_id", unicode_key(NAME_MAX), nullable=True),
        # Microseconds since the Unix epoch, UTC: the checkpoint's own timestamp, the
        # retention clock. An integer binds and compares the same on every driver.
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Index(f"{prefix}checkpoints_run_id_idx", "run_id"),
        sa.Index(f"{prefix}checkpoints_created_us_idx", "created_us"),
    )
    blobs = sa.Table(
        f"{prefix}blobs",
        md,
        sa.Column("thread_key", key_bytes(), primary_key=True),
        sa.Column("ns_key", key_bytes(), primary_key=True),
        sa.Column("channel", unicode_key(NAME_MAX), primary_key=True),
        sa.Column("version", ascii_key(VERSION_MAX), primary_key=True),
        sa.Column("type", sa.String(TYPE_MAX), nullable=False),
        sa.Column("blob", payload(), nullable=True),
        sa.Column("manifest", payload(), nullable=True),
    )
    parts = sa.Table(
        f"{prefix}parts",
        md,
        sa.Column("thread_key", key_bytes(), primary_key=True),
        sa.Column("ns_key", key_bytes(), primary_key=True),
        sa.Column("digest", key_bytes(), primary_key=True),
        sa.Column("data", payload(), nullable=False),
    )
    writes = sa.Table(
        f"{prefix}writes",
        md,
        sa.Column("thread_key", key_bytes(), primary_key=True),
        sa.Column("ns_key", key_bytes(), primary_key=True),
        sa.Column("checkpoint_id", ascii_key(CHECKPOINT_ID_MAX), primary_key=True),
        sa.Column("task_id", unicode_key(NAME_MAX), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("channel", unicode_key(NAME_MAX), nullable=False),
        sa.Column("task_path", long_text(), nullable=False),
        sa.Column("type", sa.String(TYPE_MAX), nullable=False),
        sa.Column("blob", payload(), nullable=True),
    )
    leases = lease_table(md, f"{prefix}leases")
    return SaverTables(md, checkpoints, blobs, writes, prefix, schema, leases, parts)
