"""`SQLStore`: LangGraph's `BaseStore` (long-term memory shared across threads) on
SQLite, PostgreSQL and MySQL/MariaDB, sync and async in one class.

`batch` / `abatch` check every op first (a rejected batch touches nothing), compute the
embeddings the batch needs (outside any transaction: an embedding call may take
seconds), then run the whole batch as one operation in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    NamespacePath,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core import bounds
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.leases import Lease
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.errors import ConfigurationError, InvalidArgumentError
from checkpoint_sql.stores import namespaces, store_ops, vectors
from checkpoint_sql.stores.checks import Clock, count_arg, json_object, preview, text_arg, utc_now
from checkpoint_sql.stores.component import Call, Component, Intent, Job, Target, same
from checkpoint_sql.stores.filters import check_filter
from checkpoint_sql.stores.memories import MemoryMethods
from checkpoint_sql.stores.store_ops import Batch, Context, ListNamespaces, Put, Search
from checkpoint_sql.stores.sweeper import Sweeper

TTL_LEASE = "store_ttl"
TTL_LEASE_SECONDS = 60.0
"""How long a TTL sweeper that crashed mid-sweep keeps the other replicas waiting."""
_TTL_KEYS = {"refresh_on_read", "default_ttl", "sweep_interval_minutes", "omit_expired"}
DEFAULT_SWEEP_MINUTES = 5.0


class SQLStore(MemoryMethods, Component, BaseStore):
    """LangGraph's long-term memory store on SQLAlchemy.

    Args:
        target: a database URL, None (``$CHECKPOINT_SQL_URL`` or the embedded SQLite
            file), an ``Engine`` / ``AsyncEngine``, or a `Database` shared with the
            saver and the other stores.
        async_engine: the async side when `target` is a sync ``Engine``.
        index: LangGraph's semantic-search config: ``dims``, ``embed`` and optionally
            ``fields`` (default ``["$"]``, the whole value).
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes), ``refresh_on_read``
            (default True), ``sweep_interval_minutes``. Expired items are never
            returned, whether or not a sweep has removed them yet.
        vector_scoring: ``"auto"`` (in the database where the engine can: PostgreSQL;
            SQLite when sqlite-vec loads), ``"database"`` or ``"numpy"``.
        table_prefix, schema, engine_options: as for `SQLSaver`.
        clock: where the time comes from (TTLs, timestamps); for tests.

    Call `setup()` (or ``await asetup()``) once to create or migrate the tables.
    """

    supports_ttl = True

    def __init__(
        self,
        target: Target = None,
        *,
        async_engine: AsyncEngine | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        vector_scoring: vectors.Scoring = "auto",
        table_prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        engine_options: EngineOptions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        Component.__init__(
            self,
            target,
            async_engine=async_engine,
            table_prefix=table_prefix,
            schema=schema,
            engine_options=engine_options,
        )
        self.index_config = index
        self._index = vectors.index_of(index, self.db.family, vector_scoring)
        self.ttl_config = _checked_ttl_config(ttl)
        self._clock = clock
        self._ctx = Context(self.tables, self.db.family, None if self._index is None else self._index.scoring)
        lease = Lease(self.db, self.tables.leases, TTL_LEASE, ttl=TTL_LEASE_SECONDS)
        self._sweeper = Sweeper("SQLStore", self._sweep, lease)

    @classmethod
    def from_conn_string(cls, url: str | URL | None = None, **kwargs: Any) -> SQLStore:
        """A store that owns its engines; use it as ``with`` or ``async with`` so they
        are disposed at the end. Keyword arguments are those of `SQLStore`."""
        return cls(url, **kwargs)

    # --- batches ------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops` in one transaction (reads first, then writes) and return one result
        per op. Rejects, before touching the database: an unknown op type, namespaces
        and keys LangGraph would reject (`InvalidNamespaceError`), non-JSON values
        (`SerializationError`), bad filters (`InvalidFilterError`), negative limits,
        offsets or TTLs (`InvalidArgumentError`)."""
        return self._execute(self._plan(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self._aexecute(self._plan(ops))

    def _execute(self, batch: Batch) -> list[Result]:
        if self._index is not None:
            embed = self._index.embeddings
            self._attach(
                batch,
                [embed.embed_query(q) for q in self._queries(batch)],
                embed.embed_documents(t) if (t := self._texts(batch)) else [],
            )
        return self._drive(self._batch_job(batch))

    async def _aexecute(self, batch: Batch) -> list[Result]:
        if self._index is not None:
            embed = self._index.embeddings
            texts = self._texts(batch)
            queries, documents = await asyncio.gather(
                asyncio.gather(*(embed.aembed_query(q) for q in self._queries(batch))),
                embed.aembed_documents(texts) if texts else _nothing(),
            )
            self._attach(batch, list(queries), documents)
        return await self._adrive(self._batch_job(batch))

    def _batch_job(self, batch: Batch) -> Job[list[Result]]:
        """The batch in one transaction; then, if it ran read-only and read items with a
        TTL, their clocks restarted in a short write transaction of its own (SQLite
        cannot turn a reader into a writer safely)."""
        intent = Intent.WRITE if batch.write else Intent.READ
        outcome: store_ops.Outcome = yield Call(store_ops.run_batch, (self._ctx, batch), same, intent=intent)
        if outcome.refresh:
            yield Call(store_ops.refresh_ttl, (self._ctx, outcome.refresh, batch.now), same, intent=Intent.WRITE)
        return outcome.results

    @staticmethod
    def _queries(batch: Batch) -> list[str]:
        return [s.query for s in batch.searches if s.query is not None]

    @staticmethod
    def _texts(batch: Batch) -> list[str]:
        return [text for put in batch.puts for _, text in put.texts]

    def _attach(self, batch: Batch, queries: list[list[float]], documents: list[list[float]]) -> None:
        assert self._index is not None
        dims = self._index.dims
        found = iter(vectors.check_vectors(queries, len(queries), dims))
        for search in batch.searches:
            if search.query is not None:
                search.query_vector = next(found)
        documents = vectors.check_vectors(documents, len(self._texts(batch)), dims)
        start = 0
        for put in batch.puts:
            put.vectors = documents[start : start + len(put.texts)]
            start += len(put.texts)

    # --- checking ops -------------------------------------------------------------------

    def _plan(self, ops: Iterable[Op]) -> Batch:
        if isinstance(ops, (str, bytes, Mapping)) or not isinstance(ops, Iterable):
            raise InvalidArgumentError(f"batch: ops must be an iterable of ops, not {type(ops).__name__}")
        batch = Batch(size=0, now=self._clock())
        puts: dict[bytes, Put] = {}
        for position, op in enumerate(ops):
            batch.size += 1
            if isinstance(op, GetOp):
                namespace = namespaces.check_labels(op.namespace, "get: namespace")
                key = text_arg(op.key, "get: key", allow_empty=True)
                batch.gets.append((position, namespaces.item_id(namespace, key), bool(op.refresh_ttl)))
            elif isinstance(op, SearchOp):
                batch.searches.append(self._search(position, op))
            elif isinstance(op, ListNamespacesOp):
                batch.lists.append(_listing(position, op))
            elif isinstance(op, PutOp):
                put = self._put(op)
                puts[put.item_id] = put  # the last put of an item wins
            else:
                raise InvalidArgumentError(
                    f"batch: op {position} is a {type(op).__name__}; "
                    "expected GetOp, PutOp, SearchOp or ListNamespacesOp"
                )
        batch.puts = [puts[item_id] for item_id in sorted(puts)]
        default_ttl = self.ttl_config.get("default_ttl") if self.ttl_config else None
        reads_refresh = any(g[2] for g in batch.gets) or any(s.refresh for s in batch.searches)
        batch.write = bool(batch.puts) or (reads_refresh and default_ttl is not None)
        return batch

    def _search(self, position: int, op: SearchOp) -> Search:
        query = op.query
        if query is not None and not isinstance(query, str):
            raise InvalidArgumentError(f"search: query must be a str or None, not {preview(query)}")
        return Search(
            position=position,
            prefix=namespaces.check_labels(op.namespace_prefix, "search: namespace_prefix"),
            filter=check_filter(op.filter),
            limit=count_arg(op.limit, "search: limit"),
            offset=count_arg(op.offset, "search: offset"),
            refresh=bool(op.refresh_ttl),
            query=query if query and self._index is not None else None,
        )

    def _put(self, op: PutOp) -> Put:
        namespace = namespaces.check_writable(op.namespace, "put: namespace")
        key = text_arg(op.key, "put: key", allow_empty=True)
        value = None if op.value is None else json_object(op.value, f"put: value of {key!r}")
        fields = op.index
        if (
            fields is not None
            and fields is not False
            and (isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields))
        ):
            raise InvalidArgumentError(
                f"put: index must be None, False or a list of field paths, not {preview(fields)}"
            )
        put = Put(namespaces.item_id(namespace, key), namespace, key, value, _ttl(op.ttl))
        if value is not None and self._index is not None and fields is not False:
            put.texts = vectors.texts(self._index, value, None if fields is None else list(fields))
        return put

    # --- LangGraph's convenience methods, with this package's namespace errors ----------------

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        """The item, or None if there is none (or it expired). Rejects bad labels."""
        namespaces.check_labels(namespace, "get: namespace")
        return super().get(namespace, key, refresh_ttl=refresh_ttl)

    async def aget(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        namespaces.check_labels(namespace, "get: namespace")
        return await super().aget(namespace, key, refresh_ttl=refresh_ttl)

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Items under `namespace_prefix` matching `filter` (see `checkpoint_sql.stores.filters`),
        most similar to `query` first when the store has an index, else most recently
        updated first. Rejects bad labels, filters, limits and offsets."""
        namespaces.check_labels(namespace_prefix, "search: namespace_prefix")
        return super().search(
            namespace_prefix, query=query, filter=filter, limit=limit, offset=offset, refresh_ttl=refresh_ttl
        )

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        namespaces.check_labels(namespace_prefix, "search: namespace_prefix")
        return await super().asearch(
            namespace_prefix, query=query, filter=filter, limit=limit, offset=offset, refresh_ttl=refresh_ttl
        )

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Store `value` (a JSON object) under `namespace` and `key`, replacing any
        previous value; `ttl` in minutes (default: the store's ``default_ttl``).
        Rejects an empty namespace, bad labels, a ``"langgraph"`` root, non-JSON values
        and non-positive TTLs."""
        namespaces.check_writable(namespace, "put: namespace")
        super().put(namespace, key, value, index, ttl=ttl)

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        namespaces.check_writable(namespace, "put: namespace")
        await super().aput(namespace, key, value, index, ttl=ttl)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete the item if it exists. Rejects bad labels."""
        namespaces.check_labels(namespace, "delete: namespace")
        super().delete(namespace, key)

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        namespaces.check_labels(namespace, "delete: namespace")
        await super().adelete(namespace, key)

    def list_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """Namespaces holding live items, sorted, matching `prefix` / `suffix` (``"*"``
        matches any one label), truncated to `max_depth` labels. Rejects bad labels,
        a `max_depth` below 1 and negative limits or offsets."""
        namespaces.check_labels(prefix or (), "list_namespaces: prefix")
        namespaces.check_labels(suffix or (), "list_namespaces: suffix")
        return super().list_namespaces(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        namespaces.check_labels(prefix or (), "list_namespaces: prefix")
        namespaces.check_labels(suffix or (), "list_namespaces: suffix")
        return await super().alist_namespaces(
            prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset
        )

    # --- TTL ----------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete the items that have expired; how many. (Expired items are never
        returned before that; sweeping only reclaims their space.)"""
        return self._run(self._sweep())

    async def asweep_ttl(self) -> int:
        return await self._arun(self._sweep())

    def _sweep(self) -> Call[int, int]:
        return Call(store_ops.sweep, (self._ctx, self._clock()), same, intent=Intent.WRITE)

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> concurrent.futures.Future[None]:
        """Sweep now and then every `sweep_interval_minutes` (default: the TTL config's,
        else 5) in a daemon thread; the future completes once the thread ends
        (`stop_ttl_sweeper`, or cancelling the future). Starting a running sweeper
        returns its future and keeps its interval. A failed sweep is logged and the
        next one runs on schedule (the rules of `checkpoint_sql.core.periodic`)."""
        return self._sweeper.start(self._interval(sweep_interval_minutes))

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; whether it ended within `timeout` seconds (True if
        none ran). A sweep that outlasts `timeout` still finishes, then the thread ends."""
        return self._sweeper.stop(timeout)

    async def astart_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> asyncio.Task[None]:
        """Sweep as `start_ttl_sweeper` does, in a task of the running event loop, on
        the async engine; the task ends when the sweeper stops or is cancelled."""
        return await self._sweeper.astart(self._interval(sweep_interval_minutes))

    async def astop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper task, cancelling a sweep that outlasts `timeout` seconds;
        returns once the task has ended, whether it ended in time (True if none ran)."""
        return await self._sweeper.astop(timeout)

    def _interval(self, minutes: float | None) -> float:
        if minutes is None:
            minutes = (self.ttl_config or {}).get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES
        return _positive(minutes, "sweep_interval_minutes") * 60

    def close(self) -> None:
        """Stop the sweeper thread and dispose the engines this store created."""
        self._sweeper.stop()
        super().close()

    async def aclose(self) -> None:
        self._sweeper.stop()
        await self._sweeper.astop()
        await super().aclose()


async def _nothing() -> list[list[float]]:
    return []


def _positive(value: Any, what: str) -> float:
    """A positive number of minutes, within `bounds.check_seconds`'s range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not bounds.MIN_SECONDS <= value * 60 <= bounds.MAX_SECONDS
    ):
        raise InvalidArgumentError(
            f"{what} must be a positive number of minutes (at most {bounds.MAX_SECONDS / 60:.0f}), not {preview(value)}"
        )
    return float(value)


def _ttl(value: Any) -> float | None:
    return None if value is None else _positive(value, "put: ttl")


def _listing(position: int, op: ListNamespacesOp) -> ListNamespaces:
    for condition in op.match_conditions or ():
        if getattr(condition, "match_type", None) not in ("prefix", "suffix"):
            raise InvalidArgumentError(
                "list_namespaces: match conditions must be MatchCondition('prefix' or 'suffix', path), "
                f"not {preview(condition)}"
            )
        namespaces.check_labels(condition.path, f"list_namespaces: {condition.match_type}")
    max_depth = op.max_depth
    if max_depth is not None:
        count_arg(max_depth, "list_namespaces: max_depth", minimum=1)
    return ListNamespaces(
        position=position,
        conditions=tuple(op.match_conditions or ()),
        max_depth=max_depth,
        limit=count_arg(op.limit, "list_namespaces: limit"),
        offset=count_arg(op.offset, "list_namespaces: offset"),
    )


def _checked_ttl_config(ttl: TTLConfig | None) -> TTLConfig | None:
    if ttl is None:
        return None
    if not isinstance(ttl, Mapping) or set(ttl) - _TTL_KEYS:
        raise ConfigurationError(
            f"ttl must be a TTLConfig dict with keys among {sorted(_TTL_KEYS)}, not {preview(ttl)}"
        )
    for name in ("default_ttl", "sweep_interval_minutes"):
        if ttl.get(name) is not None:
            try:
                _positive(ttl.get(name), f"ttl[{name!r}]")
            except InvalidArgumentError as exc:
                raise ConfigurationError(str(exc)) from None
    return ttl
