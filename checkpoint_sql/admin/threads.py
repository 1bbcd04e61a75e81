"""Threads at a glance (`checkpoint-sql threads`) and the database in figures (`stats`).

A page of threads is one aggregate over the checkpoints table, sorted and cut in SQL;
the sizes of the threads on that page are then summed from the blobs, parts and
writes tables for those threads only, since measuring every blob of a large database
on each listing would read all of it. Sorting by size is the exception: it has to.

A size is the payload stored: checkpoint bodies, values (a split list's array header
and manifest in its blob row, and its elements and pages of digests in the parts
table, each counted once however many versions share it) and pending writes; keys,
metadata and indexes are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.admin.output import WholeIds
from checkpoint_sql.core import migrate
from checkpoint_sql.core.ids import key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.introspection import stored_size, table_bytes
from checkpoint_sql.dialects.metadata_filter import json_member_equals, metadata_tests
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.sql_saver import SQLSaver

SORTS = ("last", "first", "checkpoints", "size", "id")


def when(us: int | None) -> str | None:
    """A ``created_us`` as an ISO 8601 UTC timestamp."""
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat()


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    for exponent, unit in ((4, "TB"), (3, "GB"), (2, "MB")):
        if n >= 999_950 * 1000 ** (exponent - 2):
            return f"{n / 1000**exponent:.1f} {unit}"
    return f"{n / 1000:.1f} kB"


def _day(us: int | None) -> str:
    return "" if us is None else f"{datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class ThreadQuery:
    """What `threads` lists: metadata filters (a thread matches if one of its
    checkpoints does), sort key and direction, and the page."""

    filters: Mapping[str, Any]
    sort: str = "last"
    descending: bool = True
    limit: int = 50
    offset: int = 0


@dataclass
class ThreadPage:
    total: int
    query: ThreadQuery
    threads: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "offset": self.query.offset,
            "limit": self.query.limit,
            "sort": self.query.sort,
            "descending": self.query.descending,
            "threads": self.threads,
        }

    def render(self) -> RenderableType:
        table = Table(title=f"{self.total} threads", title_justify="left", header_style="bold")
        for name, justify in (("thread", "left"), ("checkpoints", "right"), ("namespaces", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        table.add_column("first (UTC)")
        table.add_column("last (UTC)")
        table.add_column("size", justify="right")
        for t in self.threads:
            table.add_row(
                Text(t["thread_id"], style="bold cyan"),
                str(t["checkpoints"]),
                str(t["namespaces"]),
                _day(t["first_us"]),
                _day(t["last_us"]),
                human_bytes(t["bytes"]),
            )
        shown = f"showing {self.query.offset + 1} to {self.query.offset + len(self.threads)} of {self.total}"
        return Group(WholeIds(table), Text(shown if self.threads else "no threads match", style="dim"))


class ThreadStatements:
    """The queries of one `ThreadQuery`: the count, the page, and the sizes of the
    page's threads (built per query, since the filters and sort shape the SQL)."""

    def __init__(self, tables: SaverTables, family: Family, query: ThreadQuery) -> None:
        cp, bl, wr, pa = tables.checkpoints, tables.blobs, tables.writes, tables.parts
        matching: list[sa.ColumnElement[bool]] = []
        for i, kind in enumerate(self._kinds(family, query.filters)):
            matching.append(json_member_equals(family, cp.c.metadata, kind, bindparam(f"fk{i}"), bindparam(f"fv{i}")))
        where = [cp.c.thread_key.in_(sa.select(cp.c.thread_key).where(*matching))] if matching else []
        per_thread = (
            sa.select(
                cp.c.thread_key,
                sa.func.max(cp.c.thread_id).label("thread_id"),
                sa.func.count().label("checkpoints"),
                sa.func.count(sa.distinct(cp.c.ns_key)).label("namespaces"),
                sa.func.min(cp.c.created_us).label("first_us"),
                sa.func.max(cp.c.created_us).label("last_us"),
                sa.func.sum(stored_size(family, cp.c.checkpoint)).label("checkpoint_bytes"),
            )
            .where(*where)
            .group_by(cp.c.thread_key)
            .subquery("cpsql_threads")
        )
        payloads = (
            (bl, blob_size(family, bl)),
            (pa, stored_size(family, pa.c.data)),
            (wr, stored_size(family, wr.c.blob)),
        )
        self.sizes = [
            _sizes(table, payload).where(table.c.thread_key.in_(bindparam("tkeys", expanding=True)))
            for table, payload in payloads
        ]
        """Bytes per thread of the page's threads, in the blobs, parts and writes tables."""
        self.count = sa.select(sa.func.count()).select_from(per_thread)
        source: sa.FromClause = per_thread
        columns: list[sa.ColumnElement[Any]] = list(per_thread.c)
        key: sa.ColumnElement[Any]
        if query.sort == "size":
            key = per_thread.c.checkpoint_bytes
            for table, payload in payloads:
                sizes = _sizes(table, payload).subquery()
                key = key + sa.func.coalesce(sizes.c.bytes, 0)
                source = source.outerjoin(sizes, sizes.c.thread_key == per_thread.c.thread_key)
            columns.append(key.label("bytes"))
        else:
            key = {
                "last": per_thread.c.last_us,
                "first": per_thread.c.first_us,
                "checkpoints": per_thread.c.checkpoints,
                "id": per_thread.c.thread_id,
            }[query.sort]
        ordered = [key.desc() if query.descending else key.asc(), per_thread.c.thread_key]
        self.page = sa.select(*columns).select_from(source).order_by(*ordered).limit(query.limit).offset(query.offset)

    @staticmethod
    def _kinds(family: Family, filters: Mapping[str, Any]) -> list[str]:
        return [kind for kind, _, _ in metadata_tests(family, filters)]


def blob_size(family: Family, bl: sa.Table) -> sa.ColumnElement[Any]:
    """The stored bytes of a blob row: its value (a split list's array header) and its
    manifest, either of which may be NULL."""
    return sa.func.coalesce(stored_size(family, bl.c.blob), 0) + sa.func.coalesce(stored_size(family, bl.c.manifest), 0)


def _sizes(table: sa.Table, size: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Stored bytes per thread in `table`."""
    return sa.select(table.c.thread_key, sa.func.sum(size).label("bytes")).group_by(table.c.thread_key)


def page(saver: SQLSaver, query: ThreadQuery) -> ThreadPage:
    """One page of threads, counted and measured in one snapshot read."""
    statements = ThreadStatements(saver.tables, saver.db.family, query)
    params = _filter_params(saver.db.family, query.filters)
    return saver.db.run(_list_threads, statements, query, params, intent=Intent.READ_SNAPSHOT)


def _filter_params(family: Family, filters: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, (_, locator, value) in enumerate(metadata_tests(family, filters)):
        params[f"fk{i}"], params[f"fv{i}"] = locator, value
    return params


def _list_threads(conn: Connection, ts: ThreadStatements, query: ThreadQuery, params: dict[str, Any]) -> ThreadPage:
    total = int(conn.execute(ts.count, params).scalar_one())
    rows = [dict(r) for r in conn.execute(ts.page, params).mappings()]
    if query.sort != "size" and rows:
        keys = {"tkeys": [r["thread_key"] for r in rows]}
        extra: dict[bytes, int] = {}
        for statement in ts.sizes:
            for size in conn.execute(statement, keys):
                thread_key = bytes(size.thread_key)
                extra[thread_key] = extra.get(thread_key, 0) + int(size.bytes or 0)
        for r in rows:
            r["bytes"] = int(r["checkpoint_bytes"] or 0) + extra.get(bytes(r["thread_key"]), 0)
    threads = [
        {
            "thread_id": r["thread_id"],
            "checkpoints": int(r["checkpoints"]),
            "namespaces": int(r["namespaces"]),
            "first": when(r["first_us"]),
            "last": when(r["last_us"]),
            "first_us": int(r["first_us"]),
            "last_us": int(r["last_us"]),
            "bytes": int(r["bytes"] or 0),
        }
        for r in rows
    ]
    return ThreadPage(total, query, threads)


# --- stats ---------------------------------------------------------------------------


@dataclass
class Stats:
    engine: str
    url: str
    revision: str | None
    head: str
    figures: dict[str, Any]
    tables: dict[str, dict[str, Any]]
    largest: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "url": self.url,
            "schema_revision": self.revision,
            "schema_head": self.head,
            **self.figures,
            "tables": self.tables,
            "largest_threads": self.largest,
        }

    def render(self) -> RenderableType:
        f = self.figures
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="bold")
        summary.add_column()
        for label, value in (
            ("database", f"{self.url} ({self.engine})"),
            ("schema", f"revision {self.revision or 'none'} (bundled head {self.head})"),
            ("threads", f"{f['threads']:,}"),
            ("namespaces", f"{f['namespaces']:,}"),
            ("checkpoints", f"{f['checkpoints']:,}"),
            ("oldest", when(f["oldest_us"]) or "-"),
            ("newest", when(f["newest_us"]) or "-"),
        ):
            summary.add_row(label, value)
        tables = Table(title="tables", title_justify="left", header_style="bold")
        for name in ("table", "rows", "payload", "on disk"):
            tables.add_column(name, justify="left" if name == "table" else "right")
        for name, t in self.tables.items():
            tables.add_row(name, f"{t['rows']:,}", human_bytes(t["payload_bytes"]), human_bytes(t["disk_bytes"]))
        largest = Table(title="largest threads (by checkpoints)", title_justify="left", header_style="bold")
        largest.add_column("thread")
        largest.add_column("checkpoints", justify="right")
        for t in self.largest:
            largest.add_row(Text(t["thread_id"], style="cyan"), f"{t['checkpoints']:,}")
        return Group(summary, Text(""), tables, Text(""), WholeIds(largest))


def stats(saver: SQLSaver) -> Stats:
    """The figures of `checkpoint-sql stats`, in one snapshot read."""
    return saver.db.run(_stats, saver.tables, saver.db.family, saver.db.masked_url, intent=Intent.READ_SNAPSHOT)


def _stats(conn: Connection, tables: SaverTables, family: Family, url: str) -> Stats:
    cp, bl, pa, wr = tables.checkpoints, tables.blobs, tables.parts, tables.writes
    threads = conn.execute(sa.select(sa.func.count(sa.distinct(cp.c.thread_key)))).scalar_one()
    namespaces = conn.execute(
        sa.select(sa.func.count()).select_from(sa.select(cp.c.thread_key, cp.c.ns_key).distinct().subquery())
    ).scalar_one()
    span = conn.execute(
        sa.select(sa.func.min(cp.c.created_us).label("oldest"), sa.func.max(cp.c.created_us).label("newest"))
    ).one()
    oldest, newest = span.oldest, span.newest
    empty_blobs = conn.execute(sa.select(sa.func.count()).where(bl.c.type == "empty")).scalar_one()
    disk = table_bytes(family, conn, [cp, bl, pa, wr])
    per_table = {}
    payloads = (
        (cp, stored_size(family, cp.c.checkpoint)),
        (bl, blob_size(family, bl)),
        (pa, stored_size(family, pa.c.data)),
        (wr, stored_size(family, wr.c.blob)),
    )
    for table, payload in payloads:
        totals = conn.execute(
            sa.select(sa.func.count().label("rows"), sa.func.sum(payload).label("bytes")).select_from(table)
        ).one()
        per_table[table.name] = {
            "rows": int(totals.rows),
            "payload_bytes": int(totals.bytes or 0),
            "disk_bytes": disk[table.name],
        }
    per_table[bl.name]["empty"] = int(empty_blobs)
    largest = conn.execute(
        sa.select(sa.func.max(cp.c.thread_id).label("thread_id"), sa.func.count().label("n"))
        .group_by(cp.c.thread_key)
        .order_by(sa.desc("n"), cp.c.thread_key)
        .limit(5)
    ).all()
    revision = migrate.current(conn, tables.migrations)
    return Stats(
        engine=family,
        url=url,
        revision=revision,
        head=migrate.head(tables.migrations),
        figures={
            "threads": int(threads),
            "namespaces": int(namespaces),
            "checkpoints": per_table[cp.name]["rows"],
            "oldest_us": oldest,
            "newest_us": newest,
            "oldest": when(oldest),
            "newest": when(newest),
        },
        tables=per_table,
        largest=[{"thread_id": t.thread_id, "checkpoints": int(t.n)} for t in largest],
    )


def checkpoint_counts(saver: SQLSaver, thread_ids: Sequence[str]) -> dict[str, int]:
    """How many checkpoints each of `thread_ids` has (threads with none are absent),
    in one statement."""
    ids = {key_of(thread_id_of(t)): t for t in thread_ids}
    counts = saver.db.run(_checkpoint_counts, saver.tables, list(ids), intent=Intent.ONE_STATEMENT)
    return {ids[k]: n for k, n in counts.items()}


def _checkpoint_counts(conn: Connection, tables: SaverTables, thread_keys: Sequence[bytes]) -> dict[bytes, int]:
    cp = tables.checkpoints
    query = (
        sa.select(cp.c.thread_key, sa.func.count().label("checkpoints"))
        .where(cp.c.thread_key.in_(bindparam("keys", expanding=True)))
        .group_by(cp.c.thread_key)
    )
    return {bytes(t.thread_key): int(t.checkpoints) for t in conn.execute(query, {"keys": list(thread_keys)})}
