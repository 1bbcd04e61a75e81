"""`SQLStore`'s operations: functions of one sync `Connection`, each run in one
transaction by `Database.run` or, unchanged, by `Database.arun`.

A batch reads first (gets, searches, namespace listings) and writes last, like
LangGraph's own stores: a read never sees a put of the same batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from langgraph.store.base import Item, MatchCondition, Result, SearchItem
from sqlalchemy.engine import Connection, Row

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.json_members import JsonPath, json_text
from checkpoint_sql.dialects.statements import upsert
from checkpoint_sql.dialects.vectors import cosine_similarity, load_sqlite_vec
from checkpoint_sql.errors import MemoryNotFoundError
from checkpoint_sql.stores import filters, namespaces
from checkpoint_sql.stores.checks import chunks
from checkpoint_sql.stores.namespaces import Namespace
from checkpoint_sql.stores.tables import StoreTables
from checkpoint_sql.stores.vectors import norm, numpy_scores


@dataclass(frozen=True, slots=True)
class Context:
    tables: StoreTables
    family: Family
    scoring: Literal["database", "numpy"] | None
    """Where similarity is computed; None when the store has no index."""


@dataclass(slots=True)
class Put:
    item_id: bytes
    namespace: Namespace
    key: str
    value: dict[str, Any] | None
    """None deletes the item."""
    ttl: float | None
    texts: list[tuple[str, str]] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    missing: str | None = None
    """If set, the item must exist (and not be expired): otherwise the batch fails with
    `MemoryNotFoundError(missing)` and writes nothing."""


@dataclass(slots=True)
class Search:
    position: int
    prefix: Namespace
    filter: dict[str, Any]
    limit: int
    offset: int
    refresh: bool
    query: str | None = None
    query_vector: list[float] | None = None
    contains: tuple[JsonPath, str] | None = None
    """A case-insensitive substring the string member at the path must hold (the
    memory API's text search; not reachable through LangGraph's `SearchOp`)."""


@dataclass(slots=True)
class ListNamespaces:
    position: int
    conditions: tuple[MatchCondition, ...]
    max_depth: int | None
    limit: int
    offset: int


@dataclass(slots=True)
class Batch:
    size: int
    now: datetime
    gets: list[tuple[int, bytes, bool]] = field(default_factory=list)
    """(result position, item id, refresh its TTL)."""
    searches: list[Search] = field(default_factory=list)
    lists: list[ListNamespaces] = field(default_factory=list)
    puts: list[Put] = field(default_factory=list)
    """One per item, the last of the batch, ordered by item id (a stable lock order)."""
    write: bool = False


@dataclass(slots=True)
class Outcome:
    results: list[Result]
    refresh: dict[float, list[bytes]]
    """TTLs still to refresh, by TTL in minutes, when the batch ran read-only."""


def _columns(items: sa.Table) -> list[sa.ColumnElement[Any]]:
    return [
        items.c[name] for name in ("item_id", "namespace", "key", "value", "created_at", "updated_at", "ttl_minutes")
    ]


def _alive(items: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(items.c.expires_at.is_(None), items.c.expires_at > now)


def _item(row: Row[Any]) -> Item:
    return Item(
        value=row.value,
        key=row.key,
        namespace=namespaces.decode(row.namespace),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _search_item(row: Row[Any], score: float | None) -> SearchItem:
    return SearchItem(
        namespace=namespaces.decode(row.namespace),
        key=row.key,
        value=row.value,
        created_at=row.created_at,
        updated_at=row.updated_at,
        score=score,
    )


def run_batch(conn: Connection, ctx: Context, batch: Batch) -> Outcome:
    results: list[Result] = [None] * batch.size
    refresh: dict[float, set[bytes]] = defaultdict(set)
    if batch.gets:
        found = _rows_by_id(conn, ctx, [item_id for _, item_id, _ in batch.gets], batch.now)
        for position, item_id, wants_refresh in batch.gets:
            row = found.get(item_id)
            results[position] = None if row is None else _item(row)
            if row is not None and wants_refresh and row.ttl_minutes is not None:
                refresh[row.ttl_minutes].add(item_id)
    for search in batch.searches:
        scored = _search(conn, ctx, search, batch.now)
        results[search.position] = [_search_item(row, score) for row, score in scored]
        for row, _ in scored:
            if search.refresh and row.ttl_minutes is not None:
                refresh[row.ttl_minutes].add(bytes(row.item_id))
    for listing in batch.lists:
        results[listing.position] = _list_namespaces(conn, ctx, listing, batch.now)
    groups = {ttl: sorted(ids) for ttl, ids in refresh.items()}
    if not batch.write:
        return Outcome(results, groups)
    refresh_ttl(conn, ctx, groups, batch.now)
    if batch.puts:
        _apply_puts(conn, ctx, batch.puts, batch.now)
    return Outcome(results, {})


def _rows_by_id(conn: Connection, ctx: Context, ids: Sequence[bytes], now: datetime) -> dict[bytes, Row[Any]]:
    items = ctx.tables.items
    found: dict[bytes, Row[Any]] = {}
    for chunk in chunks(sorted(set(ids))):
        query = sa.select(*_columns(items)).where(items.c.item_id.in_(chunk), _alive(items, now))
        found.update((bytes(row.item_id), row) for row in conn.execute(query))
    return found


def _conditions(ctx: Context, search: Search, now: datetime) -> list[sa.ColumnElement[bool]]:
    items = ctx.tables.items
    conditions = [_alive(items, now), *filters.condition(ctx.family, items.c.value, search.filter)]
    if (within := namespaces.within(ctx.family, items, search.prefix)) is not None:
        conditions.append(within)
    if search.contains is not None:
        path, needle = search.contains
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(json_text(ctx.family, items.c.value, path).ilike(pattern, escape="\\"))
    return conditions


def _search(conn: Connection, ctx: Context, search: Search, now: datetime) -> list[tuple[Row[Any], float | None]]:
    """The page of matching items, best first: by similarity to the query (items with
    no vector after all scored ones), else most recently updated first."""
    items, vectors = ctx.tables.items, ctx.tables.vectors
    conditions = _conditions(ctx, search, now)
    newest = (items.c.updated_at.desc(), items.c.item_id)
    if search.query_vector is None or ctx.scoring is None:
        query = sa.select(*_columns(items)).where(*conditions).order_by(*newest)
        return [(row, None) for row in conn.execute(query.limit(search.limit).offset(search.offset))]
    joined = items.outerjoin(vectors, vectors.c.item_id == items.c.item_id)
    if ctx.scoring == "numpy":
        return _numpy_search(conn, ctx, search, joined, conditions, now)
    if ctx.family == "sqlite":
        load_sqlite_vec(conn)
    q = search.query_vector
    best = sa.func.max(cosine_similarity(ctx.family, vectors.c.embedding, vectors.c.norm, q, norm(q)))
    query = (
        sa.select(*_columns(items), best.label("score"))
        .select_from(joined)
        .where(*conditions)
        .group_by(items.c.item_id)
        .order_by(sa.case((best.is_(None), 1), else_=0), best.desc(), *newest)
        .limit(search.limit)
        .offset(search.offset)
    )
    return [(row, None if row.score is None else float(row.score)) for row in conn.execute(query)]


def _numpy_search(
    conn: Connection,
    ctx: Context,
    search: Search,
    joined: sa.Join,
    conditions: list[sa.ColumnElement[bool]],
    now: datetime,
) -> list[tuple[Row[Any], float | None]]:
    """Score every candidate's vectors in NumPy, then read only the page's items."""
    items, vectors = ctx.tables.items, ctx.tables.vectors
    query = sa.select(items.c.item_id, items.c.updated_at, vectors.c.embedding, vectors.c.norm)
    candidates = conn.execute(query.select_from(joined).where(*conditions)).all()
    assert search.query_vector is not None
    embedded = [row for row in candidates if row.embedding is not None]
    scores = numpy_scores(search.query_vector, [row.embedding for row in embedded], [row.norm for row in embedded])
    best: dict[bytes, float | None] = {}
    updated: dict[bytes, datetime] = {}
    for row in candidates:
        item_id = bytes(row.item_id)
        best.setdefault(item_id, None)
        updated[item_id] = row.updated_at
    for row, score in zip(embedded, scores, strict=True):
        item_id = bytes(row.item_id)
        previous = best[item_id]
        best[item_id] = score if previous is None else max(previous, score)
    ranked = sorted(best, key=lambda i: (best[i] is None, -(best[i] or 0.0), -updated[i].timestamp(), i))[
        search.offset : search.offset + search.limit
    ]
    rows = _rows_by_id(conn, ctx, ranked, now)
    return [(rows[i], best[i]) for i in ranked if i in rows]


def _list_namespaces(conn: Connection, ctx: Context, listing: ListNamespaces, now: datetime) -> list[Namespace]:
    items = ctx.tables.items
    conditions = [_alive(items, now)]
    for condition in listing.conditions:
        if (matched := namespaces.matches(ctx.family, items, condition)) is not None:
            conditions.append(matched)
    query = sa.select(items.c.namespace).where(*conditions).distinct().order_by(items.c.namespace)
    if listing.max_depth is None:
        query = query.limit(listing.limit).offset(listing.offset)
        return [namespaces.decode(ns) for ns in conn.execute(query).scalars()]
    # Truncation merges namespaces, so the page is cut after it, here.
    truncated = sorted({namespaces.decode(ns)[: listing.max_depth] for ns in conn.execute(query).scalars()})
    return truncated[listing.offset : listing.offset + listing.limit]


def refresh_ttl(conn: Connection, ctx: Context, groups: dict[float, list[bytes]], now: datetime) -> None:
    """Restart the TTL clock of items just read. Items that expired or were given
    another TTL meanwhile are left alone."""
    items = ctx.tables.items
    for ttl, ids in groups.items():
        for chunk in chunks(ids):
            conn.execute(
                sa.update(items)
                .where(items.c.item_id.in_(chunk), items.c.ttl_minutes == ttl, _alive(items, now))
                .values(expires_at=now + timedelta(minutes=ttl))
            )


def _apply_puts(conn: Connection, ctx: Context, puts: Sequence[Put], now: datetime) -> None:
    """Upsert or delete the items first (which locks their rows), then replace their
    vectors. An expired item is deleted before being put again, so it starts afresh
    (new ``created_at``) as it would had the sweeper already removed it."""
    items, vectors = ctx.tables.items, ctx.tables.vectors
    required = [put for put in puts if put.missing is not None]
    if required:
        query = sa.select(items.c.item_id).where(
            items.c.item_id.in_([put.item_id for put in required]), _alive(items, now)
        )
        present = {bytes(i) for i in conn.execute(query.with_for_update()).scalars()}
        for put in required:
            if put.item_id not in present:
                raise MemoryNotFoundError(put.missing)
    ids = [put.item_id for put in puts]
    for chunk in chunks(ids):
        conn.execute(sa.delete(items).where(items.c.item_id.in_(chunk), items.c.expires_at <= now))
    for chunk in chunks([put.item_id for put in puts if put.value is None]):
        conn.execute(sa.delete(items).where(items.c.item_id.in_(chunk)))
    rows = [_row(put, now) for put in puts if put.value is not None]
    if rows:
        update = [c for c in rows[0] if c not in ("item_id", "created_at")]
        conn.execute(upsert(ctx.family, items, update), rows)
    for chunk in chunks(ids):
        conn.execute(sa.delete(vectors).where(vectors.c.item_id.in_(chunk)))
    vector_rows = [
        {"item_id": put.item_id, "field_no": n, "field": name, "embedding": vector, "norm": norm(vector)}
        for put in puts
        for n, ((name, _), vector) in enumerate(zip(put.texts, put.vectors, strict=True))
    ]
    if vector_rows:
        conn.execute(sa.insert(vectors), vector_rows)


def _row(put: Put, now: datetime) -> dict[str, Any]:
    stored = namespaces.encode(put.namespace)
    return {
        "item_id": put.item_id,
        "namespace": stored,
        "ns_head": namespaces.head(stored),
        "labels": list(put.namespace),
        "depth": len(put.namespace),
        "key": put.key,
        "value": put.value,
        "created_at": now,
        "updated_at": now,
        "expires_at": None if put.ttl is None else now + timedelta(minutes=put.ttl),
        "ttl_minutes": put.ttl,
    }


def sweep(conn: Connection, ctx: Context, now: datetime) -> int:
    """Delete the items expired at `now` and their vectors; the number of items deleted."""
    items, vectors = ctx.tables.items, ctx.tables.vectors
    expired = conn.execute(sa.select(items.c.item_id).where(items.c.expires_at <= now)).scalars().all()
    deleted = 0
    for chunk in chunks([bytes(i) for i in expired]):
        deleted += conn.execute(sa.delete(items).where(items.c.item_id.in_(chunk), items.c.expires_at <= now)).rowcount
        orphan = ~sa.exists().where(items.c.item_id == vectors.c.item_id)
        conn.execute(sa.delete(vectors).where(vectors.c.item_id.in_(chunk), orphan))
    return deleted


def delete_namespace(conn: Connection, ctx: Context, namespace: Namespace) -> int:
    """Delete every item stored exactly under `namespace` (not below it); how many."""
    items, vectors = ctx.tables.items, ctx.tables.vectors
    stored = namespaces.encode(namespace)
    exact = sa.and_(items.c.ns_head == namespaces.head(stored), items.c.namespace == stored)
    ids = [bytes(i) for i in conn.execute(sa.select(items.c.item_id).where(exact)).scalars()]
    deleted = 0
    for chunk in chunks(ids):
        deleted += conn.execute(sa.delete(items).where(items.c.item_id.in_(chunk))).rowcount
        conn.execute(sa.delete(vectors).where(vectors.c.item_id.in_(chunk)))
    return deleted
