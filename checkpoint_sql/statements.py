"""The saver's SQL, built once per table set and engine family.

Statements take bound parameters only, so SQLAlchemy compiles each shape once and
caches it (a thread and namespace are bound as ``tkey``/``nkey``: an UPDATE may not
bind a parameter by a column's own name); the few built per call (`list_page`, with its variable filters) are cached
by shape too. Nothing here runs SQL: `operations.py` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, tuple_

from checkpoint_sql import dialects
from checkpoint_sql.schema import SaverTables

CHUNK = 500
"""Most keys bound in one IN (...); SQLite and psycopg cap parameters per statement."""


class SaverStatements:
    """Prebuilt statements over `tables` for one engine family."""

    def __init__(self, tables: SaverTables, family: dialects.Family) -> None:
        self.tables = tables
        self.family = family
        cp, bl, wr = tables.checkpoints, tables.blobs, tables.writes

        self.upsert_checkpoint = dialects.upsert(
            family,
            cp,
            [
                "thread_id",
                "checkpoint_ns",
                "parent_checkpoint_id",
                "type",
                "checkpoint",
                "metadata",
                "run_id",
                "created_at",
            ],
        )
        self.insert_blobs = dialects.insert_ignoring_duplicates(family, bl)
        self.insert_writes_keep_first = dialects.insert_ignoring_duplicates(family, wr)
        self.insert_writes_overwrite = dialects.upsert(family, wr, ["channel", "task_path", "type", "blob"])

        self.row_columns = (
            cp.c.thread_key,
            cp.c.ns_key,
            cp.c.checkpoint_id,
            cp.c.thread_id,
            cp.c.checkpoint_ns,
            cp.c.parent_checkpoint_id,
            cp.c.type,
            cp.c.checkpoint,
            cp.c.metadata,
        )
        here = sa.and_(cp.c.thread_key == bindparam("tkey"), cp.c.ns_key == bindparam("nkey"))
        self.latest = sa.select(*self.row_columns).where(here).order_by(cp.c.checkpoint_id.desc()).limit(1)
        self.exact = sa.select(*self.row_columns).where(here, cp.c.checkpoint_id == bindparam("checkpoint_id"))
        self.rows_by_id = sa.select(*self.row_columns).where(
            here, cp.c.checkpoint_id.in_(bindparam("ids", expanding=True))
        )
        self.blobs_by_key = sa.select(
            bl.c.thread_key, bl.c.ns_key, bl.c.channel, bl.c.version, bl.c.type, bl.c.blob
        ).where(tuple_(bl.c.thread_key, bl.c.ns_key, bl.c.channel, bl.c.version).in_(bindparam("keys", expanding=True)))
        self.writes_by_checkpoint = sa.select(
            wr.c.thread_key,
            wr.c.ns_key,
            wr.c.checkpoint_id,
            wr.c.task_id,
            wr.c.idx,
            wr.c.channel,
            wr.c.task_path,
            wr.c.type,
            wr.c.blob,
        ).where(tuple_(wr.c.thread_key, wr.c.ns_key, wr.c.checkpoint_id).in_(bindparam("keys", expanding=True)))

        # --- whole-thread statements
        self.thread_has_checkpoints: sa.Select[Any] = (
            sa.select(sa.literal_column("1")).select_from(cp).where(cp.c.thread_key == bindparam("tkey")).limit(1)
        )
        self.delete_thread = [
            sa.delete(t).where(t.c.thread_key.in_(bindparam("thread_keys", expanding=True))) for t in (cp, bl, wr)
        ]
        self.copy_thread = [
            _copy_rows(t, bindparam("target_key", type_=t.c.thread_key.type), bindparam("source_key"))
            for t in (cp, bl, wr)
        ]
        self.latest_per_namespace = (
            sa.select(cp.c.ns_key, sa.func.max(cp.c.checkpoint_id).label("checkpoint_id"))
            .where(cp.c.thread_key == bindparam("tkey"))
            .group_by(cp.c.ns_key)
        )

        # --- deleting some checkpoints of one namespace
        self.checkpoint_ids = sa.select(cp.c.checkpoint_id).where(here)
        self.rows_by_run = sa.select(*self.row_columns).where(cp.c.run_id.in_(bindparam("run_ids", expanding=True)))
        self.blob_keys_of_namespace = sa.select(bl.c.channel, bl.c.version).where(
            bl.c.thread_key == bindparam("tkey"), bl.c.ns_key == bindparam("nkey")
        )
        ids: sa.BindParameter[Any] = bindparam("ids", expanding=True)
        self.delete_writes_of = sa.delete(wr).where(
            wr.c.thread_key == bindparam("tkey"), wr.c.ns_key == bindparam("nkey"), wr.c.checkpoint_id.in_(ids)
        )
        self.delete_checkpoints_of = sa.delete(cp).where(here, cp.c.checkpoint_id.in_(ids))
        self.orphan_children = (
            sa.update(cp).where(here, cp.c.parent_checkpoint_id.in_(ids)).values(parent_checkpoint_id=None)
        )
        self.delete_blobs = sa.delete(bl).where(
            bl.c.thread_key == bindparam("tkey"),
            bl.c.ns_key == bindparam("nkey"),
            tuple_(bl.c.channel, bl.c.version).in_(bindparam("pairs", expanding=True)),
        )

        # --- the parent chain, for delta channels
        chain = (
            sa.select(cp.c.checkpoint_id, cp.c.parent_checkpoint_id, sa.literal_column("0").label("depth"))
            .where(here, cp.c.checkpoint_id == bindparam("start_id"))
            .cte("cpsql_chain", recursive=True)
        )
        parent = cp.alias("cpsql_parent")
        chain = chain.union_all(
            sa.select(parent.c.checkpoint_id, parent.c.parent_checkpoint_id, chain.c.depth + 1).where(
                parent.c.thread_key == bindparam("tkey"),
                parent.c.ns_key == bindparam("nkey"),
                parent.c.checkpoint_id == chain.c.parent_checkpoint_id,
                chain.c.depth < bindparam("max_depth"),
            )
        )
        self.chain_page = (
            sa.select(chain.c.depth, *self.row_columns)
            .join_from(chain, cp, sa.and_(here, cp.c.checkpoint_id == chain.c.checkpoint_id))
            .order_by(chain.c.depth)
        )
        self.writes_of_channels = sa.select(
            wr.c.thread_key,
            wr.c.ns_key,
            wr.c.checkpoint_id,
            wr.c.task_id,
            wr.c.idx,
            wr.c.channel,
            wr.c.task_path,
            wr.c.type,
            wr.c.blob,
        ).where(
            wr.c.thread_key == bindparam("tkey"),
            wr.c.ns_key == bindparam("nkey"),
            wr.c.checkpoint_id.in_(bindparam("ids", expanding=True)),
            wr.c.channel.in_(bindparam("channels", expanding=True)),
        )

    def list_page(
        self,
        *,
        thread_key: bytes | None,
        ns_key: bytes | None,
        checkpoint_id: str | None,
        filter: Mapping[str, Any],
        before_id: str | None,
        after: tuple[Any, ...] | None,
        limit: int,
    ) -> sa.Select[Any]:
        """One page of `list`, newest first, continuing below `after` (keyset paging).

        The sort key is the checkpoint id, then the thread and namespace keys when the
        query spans several, so pages neither skip nor repeat rows with equal ids
        (copied threads share ids). With a thread and namespace fixed, the primary key
        serves the order directly and a page reads about `limit` rows.
        """
        cp = self.tables.checkpoints
        where: list[sa.ColumnElement[bool]] = []
        order: list[sa.ColumnElement[Any]] = [cp.c.checkpoint_id]
        if thread_key is None:
            order.append(cp.c.thread_key)
        else:
            where.append(cp.c.thread_key == thread_key)
        if ns_key is None:
            order.append(cp.c.ns_key)
        else:
            where.append(cp.c.ns_key == ns_key)
        if checkpoint_id is not None:
            where.append(cp.c.checkpoint_id == checkpoint_id)
        if before_id is not None:
            where.append(cp.c.checkpoint_id < before_id)
        for key, value in filter.items():
            where.append(dialects.json_member_equals(self.family, cp.c.metadata, key, value))
        if after is not None:
            where.append(order[0] < after[0] if len(order) == 1 else tuple_(*order) < tuple_(*after))
        return sa.select(*self.row_columns).where(*where).order_by(*(c.desc() for c in order)).limit(limit)

    def list_cursor(self, row: Mapping[Any, Any], *, thread_fixed: bool, ns_fixed: bool) -> tuple[Any, ...]:
        """The keyset position of `row` in a `list_page` with the same fixed columns."""
        position = [row["checkpoint_id"]]
        if not thread_fixed:
            position.append(row["thread_key"])
        if not ns_fixed:
            position.append(row["ns_key"])
        return tuple(position)


def _copy_rows(table: sa.Table, target_key: sa.BindParameter[Any], source_key: sa.BindParameter[Any]) -> sa.Insert:
    """INSERT ... SELECT of one thread's rows of `table` under another thread key
    (and, in ``checkpoints``, another thread id)."""
    columns = list(table.columns)
    selected: list[sa.ColumnElement[Any]] = []
    for c in columns:
        if c.name == "thread_key":
            selected.append(target_key)
        elif c.name == "thread_id":
            selected.append(bindparam("target_id", type_=c.type))
        else:
            selected.append(c)
    return sa.insert(table).from_select(columns, sa.select(*selected).where(table.c.thread_key == source_key))
