"""The saver's SQL, built with SQLAlchemy Core once per table set and engine family.

Hot-path statements (`read_*`, `put`, `put_writes`) are `CompiledStatement`: compiled once per
dialect and run on the DBAPI cursor, with parameters bound by name (``tkey``/``nkey``
for a thread and namespace key; an UPDATE may not bind a parameter by a column's own
name). Reading a checkpoint, or a page of them, with every blob and write it needs is
one statement; so is storing one on PostgreSQL. The rest (deleting, copying, pruning,
walking a parent chain) are ordinary Core statements run through `Connection.execute`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, tuple_

from checkpoint_sql.core.compiled import CompiledStatement
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.capabilities import capabilities
from checkpoint_sql.dialects.columns import JSONDocument, payload
from checkpoint_sql.dialects.metadata_filter import json_member_equals
from checkpoint_sql.dialects.statements import (
    insert_ignoring_duplicates,
    join_by_key,
    typed_null,
    upsert,
    version_pairs,
)
from checkpoint_sql.saver.rows import BLOBS, CHECKPOINTS, WRITES, BlobRow, CheckpointRow, PartRow, WriteRow, columns
from checkpoint_sql.saver.schema import SaverTables

CHUNK = 500
"""Most keys bound in one IN (...); SQLite and psycopg cap parameters per statement."""

PART_BUCKETS = (4, 16, 64, 256)
"""How many digests a compiled parts lookup binds: a lookup of fewer repeats its
last digest up to the next bucket, so a handful of statements serve every size."""

ROWS_PER_INSERT = 50
"""Most rows in one multi-row INSERT; larger batches are split."""


@dataclass(frozen=True, slots=True)
class ListShape:
    """What varies between `list` queries in their SQL (values are bound apart)."""

    thread: bool
    namespace: bool
    exact: bool
    before: bool
    after: bool
    filters: tuple[str, ...]
    """The `metadata_filter.json_filters` kind of each metadata test, in order."""


def list_order(row: CheckpointRow) -> tuple[str, bytes, bytes]:
    """The key `list` orders checkpoints by (descending): the id, then the thread and
    namespace keys, which break ties between copied threads."""
    return (row.checkpoint_id, row.thread_key, row.ns_key)


class RowsInsert:
    """A multi-row INSERT (one statement for any number of rows), with an optional
    conflict clause, compiled once per row count."""

    def __init__(self, family: Family, table: sa.Table, role: str, update: Sequence[str] | None) -> None:
        self.family, self.table, self.role, self.update = family, table, role, update
        self.columns = [c.name for c in table.columns]
        self._values = operator.itemgetter(*self.columns)
        self._statements: dict[int, sa.Insert] = {}
        self._names: list[list[str]] = []
        self._renamed: dict[str, RowsInsert] = {}

    def names(self, i: int) -> list[str]:
        """The bind names of row `i`: ``<role><i>_<column>``."""
        while len(self._names) <= i:
            n = len(self._names)
            self._names.append([f"{self.role}{n}_{c}" for c in self.columns])
        return self._names[i]

    def statement(self, n: int) -> sa.Insert:
        """The INSERT of `n` rows, bound by `names`."""
        if n not in self._statements:
            rows = [
                {
                    c: bindparam(name, type_=self.table.c[c].type)
                    for c, name in zip(self.columns, self.names(i), strict=True)
                }
                for i in range(n)
            ]
            if self.update is None:
                stmt = insert_ignoring_duplicates(self.family, self.table)
            else:
                stmt = upsert(self.family, self.table, self.update)
            self._statements[n] = stmt.values(rows)
        return self._statements[n]

    def renamed(self, prefix: str) -> RowsInsert:
        """The same INSERT with its bind names prefixed, to chain it beside another."""
        if prefix not in self._renamed:
            self._renamed[prefix] = RowsInsert(self.family, self.table, prefix + self.role, self.update)
        return self._renamed[prefix]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for i, row in enumerate(rows):
            params.update(zip(self.names(i), self._values(row), strict=True))
        return params


class SaverStatements:
    """Every statement the saver runs, over `tables`, for one engine family."""

    def __init__(self, tables: SaverTables, family: Family) -> None:
        self.tables = tables
        self.family = family
        cp, bl, wr, pa = tables.checkpoints, tables.blobs, tables.writes, tables.parts
        here = sa.and_(cp.c.thread_key == bindparam("tkey"), cp.c.ns_key == bindparam("nkey"))
        parts_here = sa.and_(pa.c.thread_key == bindparam("tkey"), pa.c.ns_key == bindparam("nkey"))

        # --- reading (hot path)
        self.row_columns = columns(cp, CheckpointRow)
        key_columns = (cp.c.thread_key, cp.c.ns_key, cp.c.checkpoint_id)
        self.page_columns = list(key_columns) if capabilities(family).page_holds_keys_only else self.row_columns
        """What a read's page CTE selects; `_with_children` adds the rest."""
        # LIMIT written as a literal: bound, PostgreSQL's generic plan of a prepared read
        # cannot know it is 1, and if that plan costs more than a custom one PostgreSQL
        # plans every call anew. A benchmark run showed get_tuple (latest) at 2.5x the
        # driver time of get_tuple (by id), the gap forced custom plans give; with the
        # literal the two are equal. The cause was not reproduced in isolation.
        latest = (
            sa.select(*self.page_columns)
            .where(here)
            .order_by(cp.c.checkpoint_id.desc())
            .limit(sa.literal_column("1", sa.Integer))
        )
        exact_page = sa.select(*self.page_columns).where(here, cp.c.checkpoint_id == bindparam("checkpoint_id"))
        self.read_latest = CompiledStatement(self._with_children(latest))
        self.read_exact = CompiledStatement(self._with_children(exact_page))
        exact = sa.select(*self.row_columns).where(here, cp.c.checkpoint_id == bindparam("checkpoint_id"))
        self.parts_lookup = {
            n: CompiledStatement(
                sa.select(*columns(pa, PartRow)).where(
                    parts_here, pa.c.digest.in_([bindparam(f"d{i}", type_=pa.c.digest.type) for i in range(n)])
                )
            )
            for n in PART_BUCKETS
        }
        """A namespace's parts by digest, for each bucket size (see `parts_params`)."""
        self.parts_of_namespace = CompiledStatement(
            sa.select(*columns(pa, PartRow)).where(parts_here).limit(bindparam("limit"))
        )
        """At most ``limit`` parts of a namespace, in no particular order: one range scan
        of the primary key where a long list would take hundreds of lookups by key."""

        # --- writing (hot path)
        self.checkpoint_upsert = RowsInsert(family, cp, "c", [c.name for c in cp.columns if not c.primary_key])
        self.blob_insert = RowsInsert(family, bl, "b", None)
        self.parts_insert = RowsInsert(family, pa, "e", None)
        self.writes_keep_first = RowsInsert(family, wr, "k", None)
        self.writes_overwrite = RowsInsert(family, wr, "o", ["channel", "task_path", "type", "blob"])
        self._chained: dict[tuple[tuple[str, int], ...], CompiledStatement] = {}
        self._list_pages: dict[ListShape, CompiledStatement] = {}
        self._single: dict[tuple[str, int], CompiledStatement] = {}

        # --- whole threads
        self.thread_has_checkpoints: sa.Select[Any] = (
            sa.select(sa.literal_column("1")).select_from(cp).where(cp.c.thread_key == bindparam("tkey")).limit(1)
        )
        # In the order a put writes its rows (`put_plan`): where a racing put's rows
        # are met by locking reads (MySQL), both take their locks in one order, so the
        # put waits for the delete or the copy instead of deadlocking with it.
        self.delete_thread = [
            sa.delete(t).where(t.c.thread_key.in_(bindparam("thread_keys", expanding=True))) for t in (pa, bl, wr, cp)
        ]
        self.copy_thread = [_copy_rows(t) for t in (pa, bl, wr, cp)]
        self.latest_per_namespace = (
            sa.select(cp.c.ns_key, sa.func.max(cp.c.checkpoint_id).label("checkpoint_id"))
            .where(cp.c.thread_key == bindparam("tkey"))
            .group_by(cp.c.ns_key)
        )

        # --- some checkpoints of one namespace
        self.exact_row = exact
        self.checkpoint_ids = sa.select(cp.c.checkpoint_id).where(here)
        self.rows_by_id = sa.select(*self.row_columns).where(
            here, cp.c.checkpoint_id.in_(bindparam("ids", expanding=True))
        )
        self.rows_by_run = sa.select(*self.row_columns).where(cp.c.run_id.in_(bindparam("run_ids", expanding=True)))
        self.blob_keys_of_namespace = sa.select(bl.c.channel, bl.c.version).where(
            bl.c.thread_key == bindparam("tkey"), bl.c.ns_key == bindparam("nkey")
        )
        self.manifests_of_namespace = sa.select(bl.c.manifest).where(
            bl.c.thread_key == bindparam("tkey"), bl.c.ns_key == bindparam("nkey"), bl.c.manifest.is_not(None)
        )
        self.part_digests_of_namespace = sa.select(pa.c.digest).where(parts_here)
        self.parts_by_digest = sa.select(pa.c.digest, pa.c.data).where(
            parts_here, pa.c.digest.in_(bindparam("digests", expanding=True))
        )
        self.delete_parts = sa.delete(pa).where(parts_here, pa.c.digest.in_(bindparam("digests", expanding=True)))
        self.blobs_by_pair = sa.select(*columns(bl, BlobRow)).where(
            bl.c.thread_key == bindparam("tkey"),
            bl.c.ns_key == bindparam("nkey"),
            tuple_(bl.c.channel, bl.c.version).in_(bindparam("pairs", expanding=True)),
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
            sa.select(*self.row_columns)
            .join_from(chain, cp, sa.and_(here, cp.c.checkpoint_id == chain.c.checkpoint_id))
            .order_by(chain.c.depth)
        )
        self.writes_of_channels = sa.select(*columns(wr, WriteRow)).where(
            wr.c.thread_key == bindparam("tkey"),
            wr.c.ns_key == bindparam("nkey"),
            wr.c.checkpoint_id.in_(bindparam("ids", expanding=True)),
            wr.c.channel.in_(bindparam("channels", expanding=True)),
        )

    # --- reading -----------------------------------------------------------------------

    def _with_children(self, page: sa.Select[Any]) -> sa.CompoundSelect[Any]:
        """The checkpoints `page` selects (its `page_columns`), with the blobs their
        versions point at and their pending writes, as one UNION ALL: one round trip
        for any page size.

        Blobs are joined through the distinct (thread, namespace, channel, version)
        keys of the page, so a value shared by several checkpoints is sent once. Where
        the page holds primary keys only (see `Capabilities.page_holds_keys_only`), each
        part joins back to the checkpoint rows. Rows come back unordered; the caller
        orders the checkpoints.
        """
        cp, bl, wr = self.tables.checkpoints, self.tables.blobs, self.tables.writes
        null = self._null
        keyed = page.cte("cpsql_page")
        rows: sa.FromClause = keyed
        source: sa.FromClause = keyed
        if capabilities(self.family).page_holds_keys_only:
            rows = keyed.join(
                cp,
                sa.and_(
                    cp.c.thread_key == keyed.c.thread_key,
                    cp.c.ns_key == keyed.c.ns_key,
                    cp.c.checkpoint_id == keyed.c.checkpoint_id,
                ),
            )
            source = cp
        pairs, channel, version = version_pairs(self.family, source.c.versions, "cpsql_pairs")
        keys = (
            sa.select(source.c.thread_key, source.c.ns_key, channel.label("channel"), version.label("version"))
            .select_from(rows, pairs)
            .distinct()
            .subquery("cpsql_keys")
        )
        nulls = {
            "checkpoint_id": null(sa.String()),
            "parent_checkpoint_id": null(sa.String()),
            "metadata": null(JSONDocument()),
            "versions": null(JSONDocument()),
            "idx": null(sa.Integer()),
            "manifest": null(payload()),
        }
        checkpoints = sa.select(*CHECKPOINTS.selected(source.c, nulls)).select_from(rows)
        joined, found = join_by_key(self.family, keys, bl, ("thread_key", "ns_key", "channel", "version"))
        blobs = sa.select(*BLOBS.selected(found.c, nulls)).select_from(joined)
        writes = sa.select(*WRITES.selected(wr.c, nulls)).select_from(
            keyed.join(
                wr,
                sa.and_(
                    wr.c.thread_key == keyed.c.thread_key,
                    wr.c.ns_key == keyed.c.ns_key,
                    wr.c.checkpoint_id == keyed.c.checkpoint_id,
                ),
            )
        )
        return sa.union_all(checkpoints, blobs, writes)

    def _null(self, type_: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
        return typed_null(self.family, type_)

    def list_page(self, shape: ListShape) -> CompiledStatement:
        """One page of `list`, newest first, continuing below the ``after*`` keyset
        position, with its blobs and writes; compiled once per shape.

        The sort key is the checkpoint id, then the thread and namespace keys when the
        query spans several, so pages neither skip nor repeat rows with equal ids
        (copied threads share ids). With a thread and namespace fixed, the primary key
        serves the order directly and a page reads about ``limit`` rows.
        """
        found = self._list_pages.get(shape)
        if found is not None:
            return found
        cp = self.tables.checkpoints
        where: list[sa.ColumnElement[bool]] = []
        order: list[sa.ColumnElement[Any]] = [cp.c.checkpoint_id]
        if shape.thread:
            where.append(cp.c.thread_key == bindparam("tkey"))
        else:
            order.append(cp.c.thread_key)
        if shape.namespace:
            where.append(cp.c.ns_key == bindparam("nkey"))
        else:
            order.append(cp.c.ns_key)
        if shape.exact:
            where.append(cp.c.checkpoint_id == bindparam("checkpoint_id"))
        if shape.before:
            where.append(cp.c.checkpoint_id < bindparam("before_id"))
        for i, kind in enumerate(shape.filters):
            condition = json_member_equals(self.family, cp.c.metadata, kind, bindparam(f"fk{i}"), bindparam(f"fv{i}"))
            where.append(condition)
        if shape.after:
            position = [bindparam(f"after{i}", type_=c.type) for i, c in enumerate(order)]
            where.append(order[0] < position[0] if len(order) == 1 else tuple_(*order) < tuple_(*position))
        page = sa.select(*self.page_columns).where(*where).order_by(*(c.desc() for c in order))
        found = self._list_pages[shape] = CompiledStatement(self._with_children(page.limit(bindparam("limit"))))
        return found

    def parts_params(
        self, thread_key: bytes, ns_key: bytes, digests: Sequence[bytes]
    ) -> tuple[CompiledStatement, dict[str, Any]]:
        """The `parts_lookup` for at most ``PART_BUCKETS[-1]`` digests, and its parameters."""
        n = next(b for b in PART_BUCKETS if b >= len(digests))
        params: dict[str, Any] = {"tkey": thread_key, "nkey": ns_key}
        params.update((f"d{i}", digests[min(i, len(digests) - 1)]) for i in range(n))
        return self.parts_lookup[n], params

    @staticmethod
    def list_cursor(row: CheckpointRow, *, thread_fixed: bool, ns_fixed: bool) -> tuple[str | bytes, ...]:
        """The keyset position of `row` in a `list_page` with the same fixed columns."""
        position: list[str | bytes] = [row.checkpoint_id]
        if not thread_fixed:
            position.append(row.thread_key)
        if not ns_fixed:
            position.append(row.ns_key)
        return tuple(position)

    # --- writing -----------------------------------------------------------------------

    def put_plan(
        self,
        checkpoint: Mapping[str, Any] | None,
        blobs: Sequence[Mapping[str, Any]],
        parts: Sequence[Mapping[str, Any]],
        keep_first: Sequence[Mapping[str, Any]],
        overwrite: Sequence[Mapping[str, Any]],
    ) -> list[tuple[CompiledStatement, dict[str, Any]]]:
        """The statements storing these rows, with their parameters.

        On PostgreSQL they are chained into one statement (data-modifying CTEs), so a
        put is one round trip and its own transaction; elsewhere they are separate
        statements the caller runs in one transaction. Empty groups are left out.

        Parts come sorted by digest, so that two writers storing some of the same ones
        take their locks in one order and wait for each other instead of deadlocking.
        The CTEs of a statement run in no documented order (PostgreSQL runs the main
        statement, then the CTEs last to first), so with more than one INSERT of parts
        in a chain a digest's turn would depend on how many parts of the put sort
        below it, which differs between two writers. Such parts (a put adding more
        than `ROWS_PER_INSERT`, which is rare) therefore go first, one statement per
        INSERT in digest order, and the rest is chained.
        """
        groups = [
            (self.parts_insert, parts),
            (self.blob_insert, blobs),
            (self.writes_keep_first, keep_first),
            (self.writes_overwrite, overwrite),
        ]
        if checkpoint is not None:
            groups.append((self.checkpoint_upsert, [checkpoint]))
        pieces = [
            (insert, list(rows[i : i + ROWS_PER_INSERT]))
            for insert, rows in groups
            for i in range(0, len(rows), ROWS_PER_INSERT)
        ]
        if len(pieces) > 1:  # distinct bind names: a chain, or a MySQL batch, sends them in one query
            pieces = [(insert.renamed(f"p{i}"), rows) for i, (insert, rows) in enumerate(pieces)]
        alone = 0 if len(parts) <= ROWS_PER_INSERT else math.ceil(len(parts) / ROWS_PER_INSERT)  # INSERTs of parts
        if capabilities(self.family).chains_writes and len(pieces) - alone > 1:
            chained = pieces[alone:]
            params = {k: v for insert, rows in chained for k, v in insert.params(rows).items()}
            return [*self._singles(pieces[:alone]), (self._chain(chained), params)]
        return self._singles(pieces)

    def _singles(
        self, pieces: Sequence[tuple[RowsInsert, Sequence[Any]]]
    ) -> list[tuple[CompiledStatement, dict[str, Any]]]:
        return [(self._single_insert(insert, len(rows)), insert.params(rows)) for insert, rows in pieces]

    def _single_insert(self, insert: RowsInsert, n: int) -> CompiledStatement:
        key = (insert.role, n)
        if key not in self._single:
            self._single[key] = CompiledStatement(insert.statement(n))
        return self._single[key]

    def _chain(self, parts: Sequence[tuple[RowsInsert, Sequence[Any]]]) -> CompiledStatement:
        """One statement running every part: all but the last as CTEs of the last,
        compiled once per shape (which inserts, how many rows each)."""
        shape = tuple((insert.role, len(rows)) for insert, rows in parts)
        if shape not in self._chained:
            statements = [insert.statement(len(rows)) for insert, rows in parts]
            main = statements[-1]
            for i, stmt in enumerate(statements[:-1]):
                main = main.add_cte(stmt.cte(f"cpsql_put_{i}"))
            self._chained[shape] = CompiledStatement(main)
        return self._chained[shape]


def _copy_rows(table: sa.Table) -> sa.Insert:
    """INSERT ... SELECT of one thread's rows of `table` under another thread key
    (and, in ``checkpoints``, another thread id)."""
    columns = list(table.columns)
    selected: list[sa.ColumnElement[Any]] = []
    for c in columns:
        if c.name == "thread_key":
            selected.append(bindparam("target_key", type_=c.type))
        elif c.name == "thread_id":
            selected.append(bindparam("target_id", type_=c.type))
        else:
            selected.append(c)
    return sa.insert(table).from_select(
        columns, sa.select(*selected).where(table.c.thread_key == bindparam("source_key"))
    )
