"""`SQLSaver`: LangGraph's `BaseCheckpointSaver` on SQLite, PostgreSQL and MySQL/MariaDB.

Every public method comes as a sync/async pair whose bodies are one line each: the
work is described once by a `Call` (validate and serialize, which operation to run,
how to turn its rows into the result), and `_run` / `_arun` execute it on the sync or
the async engine (`checkpoint_sql.core.calls`). The operations themselves live in
`operations.py`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core import bounds, migrate
from checkpoint_sql.core.calls import Call, DatabaseClient, Job, Progress, each, same
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.ids import address_of, key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.dialects.capabilities import capabilities
from checkpoint_sql.dialects.metadata_filter import metadata_tests
from checkpoint_sql.errors import (
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    UnknownCheckpointError,
)
from checkpoint_sql.saver import codec, elements, operations, retention
from checkpoint_sql.saver.schema import SaverTables, saver_tables
from checkpoint_sql.saver.statements import ListShape, SaverStatements

R = TypeVar("R")
T = TypeVar("T")

LIST_PAGE = 100
"""Checkpoints fetched per statement while iterating `list`."""

PRUNE_STRATEGIES = ("keep_latest", "delete", "delete_all")
"""``delete_all`` is ``delete`` by the name the LangGraph Agent Server's fallback sends."""

# Aliases, because inside SQLSaver the name `list` is the method.
Tuples = list[CheckpointTuple]
Page = tuple[Tuples, "tuple[Any, ...] | None"]


@dataclass(slots=True)
class _ListPlan:
    """A validated `list` request: its statement shape and bound values."""

    shape: ListShape
    params: dict[str, Any]
    limit: int | None
    started: bool = field(default=False)


class SQLSaver(BaseCheckpointSaver[str], DatabaseClient):
    """A LangGraph checkpointer on SQLAlchemy: one class for sync and async use.

    Args:
        target: a database URL (``sqlite:///file.db``, ``postgresql://...``,
            ``mysql://...``, ``mariadb://...``; plain scheme names, drivers are chosen
            for you), None for ``$CHECKPOINT_SQL_URL`` or the embedded SQLite default,
            an existing ``Engine`` or ``AsyncEngine`` to share its pool, or a
            `Database` shared with the companion stores.
        async_engine: the async side, when `target` is a sync ``Engine`` and you have both.
        serde: the serializer for channel values and writes (LangGraph's
            ``JsonPlusSerializer`` by default; ``EncryptedSerializer`` works as is).
        table_prefix: prefix of the three table names, default ``cpsql_``.
        schema: database schema (PostgreSQL) or database (MySQL) holding the tables.
        engine_options: pool and durability settings for engines created from a URL.

    Call `setup()` (or ``await asetup()``) once to create or migrate the tables.
    """

    def __init__(
        self,
        target: str | URL | Engine | AsyncEngine | Database | None = None,
        *,
        async_engine: AsyncEngine | None = None,
        serde: SerializerProtocol | None = None,
        table_prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        engine_options: EngineOptions | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._use_database(target, async_engine=async_engine, engine_options=engine_options)
        self.tables: SaverTables = saver_tables(table_prefix, schema)
        self._st = SaverStatements(self.tables, self.db.family)
        self._parts = elements.PartCache()

    @classmethod
    def from_conn_string(cls, url: str | URL | None = None, **kwargs: Any) -> SQLSaver:
        """A saver that owns its engines; use it as ``with`` or ``async with`` so they
        are disposed at the end. Keyword arguments are those of `SQLSaver`."""
        return cls(url, **kwargs)

    def __repr__(self) -> str:
        return f"SQLSaver({self.db.masked_url!r}, table_prefix={self.tables.prefix!r})"

    # --- setup ----------------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the tables. Idempotent; safe from many processes at once."""
        self._run(self._setup())

    async def asetup(self) -> None:
        await self._arun(self._setup())

    def _setup(self) -> Call[Any, None]:
        return Call(migrate.upgrade, (self.tables.migrations, self.db.family), lambda _: None, intent=Intent.WRITE)

    # --- reading ----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names, or the latest of its thread and namespace
        (`checkpoint_ns` defaults to the root ""); None if there is none."""
        return self._run(self._get_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(self._get_tuple(config))

    def _get_tuple(self, config: RunnableConfig) -> Call[codec.Loaded, CheckpointTuple | None]:
        address = address_of(config, operation="get_tuple")
        params: dict[str, Any] = {"tkey": address.thread_key, "nkey": address.ns_key}
        if address.checkpoint_id is None:
            statement = self._st.read_latest
        else:
            statement, params["checkpoint_id"] = self._st.read_exact, address.checkpoint_id
        assert address.ns_key is not None, "get_tuple always names its namespace"
        namespace = (address.thread_key, address.ns_key)

        def first(loaded: codec.Loaded) -> CheckpointTuple | None:
            # The thread's next put derives from what this read found: the part cache
            # keeps exactly that (see `PartCache.validate`).
            found = loaded.reached.get(namespace, elements.Reached()) if loaded.checkpoints else None
            self._parts.validate(namespace, found, loaded.parts.get(namespace, {}))
            tuples = codec.checkpoint_tuples(self.serde, loaded)
            return tuples[0] if tuples else None

        return Call(
            operations.read, (self._st, statement, params, self._parts), first, intent=Intent.ONE_STATEMENT, raw=True
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first.

        `config` None lists every thread; a config without ``checkpoint_ns`` lists
        every namespace of its thread; one with ``checkpoint_id`` lists that checkpoint.
        `filter` keeps checkpoints whose metadata has each key equal to its value
        (answered in SQL); `before` keeps ids older than its ``checkpoint_id``.
        Arguments are checked now; rows are fetched page by page as you iterate, each
        page in its own short transaction.
        """
        plan = self._list_plan(config, filter, before, limit)
        return self._iterate(plan)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        plan = self._list_plan(config, filter, before, limit)
        return self._aiterate(plan)

    def _iterate(self, plan: _ListPlan) -> Iterator[CheckpointTuple]:
        after, remaining = None, plan.limit
        while (call := self._page(plan, after, remaining)) is not None:
            tuples, after = self._run(call)
            yield from tuples
            remaining = None if remaining is None else remaining - len(tuples)

    async def _aiterate(self, plan: _ListPlan) -> AsyncIterator[CheckpointTuple]:
        after, remaining = None, plan.limit
        while (call := self._page(plan, after, remaining)) is not None:
            tuples, after = await self._arun(call)
            for item in tuples:
                yield item
            remaining = None if remaining is None else remaining - len(tuples)

    def _page(
        self, plan: _ListPlan, after: tuple[Any, ...] | None, remaining: int | None
    ) -> Call[codec.Loaded, Page] | None:
        """The call fetching the page after `after`, or None once the listing is done.

        Its result is the page's tuples and the cursor of the next page (None when this
        page came back short, so the last page costs no extra empty query).
        """
        if (plan.started and after is None) or remaining == 0:
            return None
        plan.started = True
        size = LIST_PAGE if remaining is None else min(LIST_PAGE, remaining)
        shape = plan.shape if after is None else replace(plan.shape, after=True)
        params = {**plan.params, "limit": size, **{f"after{i}": v for i, v in enumerate(after or ())}}

        def finish(loaded: codec.Loaded) -> Page:
            tuples = codec.checkpoint_tuples(self.serde, loaded)
            if len(tuples) < size:
                return tuples, None
            cursor = self._st.list_cursor(
                loaded.checkpoints[-1], thread_fixed=plan.shape.thread, ns_fixed=plan.shape.namespace
            )
            return tuples, cursor

        page = self._st.list_page(shape)
        return Call(
            operations.read, (self._st, page, params, self._parts), finish, intent=Intent.ONE_STATEMENT, raw=True
        )

    def _list_plan(
        self,
        config: RunnableConfig | None,
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> _ListPlan:
        address = None if config is None else address_of(config, operation="list", default_ns=False)
        params: dict[str, Any] = {}
        if address is not None:
            params.update(tkey=address.thread_key, nkey=address.ns_key, checkpoint_id=address.checkpoint_id)
        if before is not None:
            configurable = before.get("configurable") if isinstance(before, Mapping) else None
            if not isinstance(configurable, Mapping) or not configurable.get("checkpoint_id"):
                raise InvalidConfigError("list: before= must be a config with configurable.checkpoint_id")
            params["before_id"] = address_of(
                {"configurable": {"thread_id": "-", **configurable}}, operation="list(before=...)"
            ).checkpoint_id
        if limit is not None:
            bounds.check_int(limit, "list: limit", minimum=0)
        kinds = []
        for i, (kind, locator, value) in enumerate(metadata_tests(self.db.family, checked_filter(filter))):
            kinds.append(kind)
            params[f"fk{i}"], params[f"fv{i}"] = locator, value
        shape = ListShape(
            thread=address is not None,
            namespace=address is not None and address.ns_key is not None,
            exact=address is not None and address.checkpoint_id is not None,
            before="before_id" in params,
            after=False,
            filters=tuple(kinds),
        )
        return _ListPlan(shape, params, limit)

    # --- writing ----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (child of ``config``'s checkpoint_id) in one transaction:
        a blob for each channel in `new_versions`, then the checkpoint row. Storing the
        same checkpoint id again overwrites it."""
        return self._run(self._put(config, checkpoint, metadata, new_versions, None))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._arun(self._put(config, checkpoint, metadata, new_versions, None))

    def put_full(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[Sequence[Any]],
    ) -> RunnableConfig:
        """`put` plus the checkpoint's pending writes, in one transaction: either all of
        it is stored or none. Each write is ``(task_id, channel, value)`` or
        ``(task_id, channel, value, task_path)``; per task, the `put_writes` rules apply."""
        return self._run(self._put(config, checkpoint, metadata, new_versions, writes))

    async def aput_full(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[Sequence[Any]],
    ) -> RunnableConfig:
        return await self._arun(self._put(config, checkpoint, metadata, new_versions, writes))

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[Sequence[Any]] | None,
    ) -> Call[None, RunnableConfig]:
        address = address_of(config, operation="put")
        assert address.ns_key is not None, "a put always names its namespace"
        namespace = (address.thread_key, address.ns_key)
        view = self._parts.view(namespace)
        prepared = codec.prepare_put(self.serde, address, checkpoint, metadata, new_versions, config, view)
        checkpoint_id = prepared.checkpoint["checkpoint_id"]
        if writes is not None:
            codec.add_full_put_writes(self.serde, address, checkpoint_id, writes, prepared.writes)
        stored = address.config(checkpoint_id)
        parts = [
            {"thread_key": address.thread_key, "ns_key": address.ns_key, "digest": d, "data": data}
            for d, data in sorted(self._parts.unknown(namespace, prepared.parts).items())
        ]

        def finish(_: None) -> RunnableConfig:
            self._parts.learn(namespace, prepared.parts, prepared.splits)
            return stored

        return self._write(prepared.checkpoint, prepared.blobs, parts, prepared.writes, finish)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against ``config``'s checkpoint (which may not be
        committed yet). Ordinary writes keep the first attempt; a batch made only of
        special channels (error, interrupt, scheduled, resume) overwrites."""
        self._run(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self._put_writes(config, writes, task_id, task_path))

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Call[None, None]:
        address = address_of(config, operation="put_writes")
        if address.checkpoint_id is None:
            raise UnknownCheckpointError(
                f"put_writes: config names no checkpoint_id for thread {address.thread_id!r}; "
                "writes belong to the checkpoint they were computed from"
            )
        prepared = codec.PreparedWrites()
        codec.add_task_writes(self.serde, address, address.checkpoint_id, writes, task_id, task_path, prepared)
        return self._write(None, [], [], prepared, same)

    def _write(
        self,
        checkpoint: dict[str, Any] | None,
        blobs: Sequence[dict[str, Any]],
        parts: Sequence[dict[str, Any]],
        writes: codec.PreparedWrites,
        finish: Callable[[None], T],
    ) -> Call[None, T]:
        """The call storing these rows: one statement where the engine allows (then it
        is its own transaction), else one transaction. Parts go in sorted by digest, so
        that two writers storing some of the same ones lock them in the same order."""
        keep_first, overwrite = list(writes.keep_first.values()), list(writes.overwrite.values())
        plan = self._st.put_plan(checkpoint, blobs, parts, keep_first, overwrite)
        single = len(plan) == 1 and capabilities(self.db.family).lone_writes_are_atomic
        intent = Intent.ONE_STATEMENT if single else Intent.GROUPED_WRITE
        return Call(operations.write, (plan,), finish, intent=intent, raw=True)

    # --- deleting and copying ---------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread, in all namespaces."""
        self._run(self._delete_threads([thread_id]))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(self._delete_threads([thread_id]))

    def delete_lineage(self, thread_id: str) -> None:
        """`delete_thread` by its lineage name (a lineage is a LangGraph thread)."""
        self.delete_thread(thread_id)

    async def adelete_lineage(self, thread_id: str) -> None:
        await self.adelete_thread(thread_id)

    def _delete_threads(self, thread_ids: Sequence[Any]) -> Call[None, None]:
        keys = [key_of(thread_id_of(t)) for t in thread_ids]
        # snapshot: a put committing between the delete's statements must be seen by
        # none of them (PostgreSQL), or wait for the delete (MySQL's locking reads), so
        # that its checkpoint goes whole or stays whole, never without its blobs.
        finish = elements.forgetting(keys)
        return Call(operations.delete_threads, (self._st, keys), finish, intent=Intent.SNAPSHOT_WRITE)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is one of `run_ids`, their
        writes and the blobs no remaining checkpoint uses."""
        if call := self._delete_for_runs(run_ids):
            self._run(call)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if call := self._delete_for_runs(run_ids):
            await self._arun(call)

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Call[None, None] | None:
        ids = _strings(run_ids, "delete_for_runs: run_ids")
        if not ids:
            return None
        return Call(
            operations.delete_for_runs, (self._st, ids), elements.forgetting(None), intent=Intent.SNAPSHOT_WRITE
        )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a whole thread (every namespace, checkpoint, blob and write, same ids)
        to a new thread id. Raises `ThreadNotFoundError` if the source has no
        checkpoints and `ThreadExistsError` if the target has some."""
        self._run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(self._copy_thread(source_thread_id, target_thread_id))

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> Call[None, None]:
        source = address_of({"configurable": {"thread_id": source_thread_id}}, operation="copy_thread")
        target = address_of({"configurable": {"thread_id": target_thread_id}}, operation="copy_thread")
        if source.thread_id == target.thread_id:
            raise InvalidArgumentError(f"copy_thread: source and target are the same thread {source.thread_id!r}")
        # snapshot: a put on the source committing between the copy's statements must
        # reach the copy whole (PostgreSQL: not at all; MySQL: it waits), not as blobs
        # and parts without their checkpoint.
        return Call(operations.copy_thread, (self._st, source, target), same, intent=Intent.SNAPSHOT_WRITE)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep each namespace's latest checkpoint (and, for delta
        channels, the ancestors their value is rebuilt from); ``"delete"`` (or
        ``"delete_all"``): delete the threads. One transaction per thread."""
        self._drive(self._prune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._adrive(self._prune(thread_ids, strategy))

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Job[None]:
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidArgumentError(f"prune: unknown strategy {strategy!r}; use one of {PRUNE_STRATEGIES}")
        threads = [thread_id_of(t) for t in _strings(thread_ids, "prune: thread_ids", allow_ints=True)]
        if not threads:
            return each([])
        if strategy in ("delete", "delete_all"):
            return each([self._delete_threads(threads)])
        keys = [key_of(t) for t in threads]
        finish = elements.forgetting(keys)
        return each(
            Call(operations.prune_keep_latest, (self._st, k), finish, intent=Intent.SNAPSHOT_WRITE) for k in keys
        )

    # --- delta channels ------------------------------------------------------------------

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """For each channel, the writes along the parent chain of ``config``'s
        checkpoint back to the nearest ancestor storing its value (the seed), in
        replay order, answered with a recursive query and two bulk reads."""
        call = self._delta_history(config, channels)
        return {} if call is None else self._run(call)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        call = self._delta_history(config, channels)
        return {} if call is None else await self._arun(call)

    def _delta_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Call[operations.DeltaRows, Mapping[str, DeltaChannelHistory]] | None:
        address = address_of(config, operation="get_delta_channel_history")
        names = _strings(channels, "get_delta_channel_history: channels")
        if not names:
            return None
        return Call(
            operations.delta_history,
            (self._st, address, names),
            lambda rows: codec.delta_histories(self.serde, rows.writes, rows.seeds, rows.parts),
        )

    # --- versions ------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``"<counter:032>.<random>"``, the string versions LangGraph's own SQL savers
        use: ordered by counter, unique across concurrent forks by the random part."""
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"

    # --- retention ------------------------------------------------------------------------

    def retain(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | str | None = None,
        threads: Sequence[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        override: retention.Override | None = None,
        veto: retention.Veto | None = None,
    ) -> retention.RetentionReport:
        """Delete old checkpoints: those beyond the newest `keep_last` per thread and
        namespace and/or older than `older_than` (a timedelta or ``"30d"``), in
        `threads` or every thread; both limits given, a checkpoint must exceed both.
        DeltaChannel chains of kept checkpoints are never cut. One transaction per
        thread; `dry_run` only reports. `override` picks a thread's own policy (or
        `EXEMPT`) from its latest metadata; `veto` may refuse a thread's deletion.
        See `checkpoint_sql.saver.retention`."""
        return self._drive(self._retention(keep_last, older_than, threads, dry_run, progress, override, veto))

    async def aretain(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | str | None = None,
        threads: Sequence[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        override: retention.Override | None = None,
        veto: retention.Veto | None = None,
    ) -> retention.RetentionReport:
        return await self._adrive(self._retention(keep_last, older_than, threads, dry_run, progress, override, veto))

    def _retention(
        self,
        keep_last: int | None,
        older_than: timedelta | str | None,
        threads: Sequence[str] | None,
        dry_run: bool,
        progress: Progress | None,
        override: retention.Override | None,
        veto: retention.Veto | None,
    ) -> Job[retention.RetentionReport]:
        """The retention job, with every part cache of the process forgetting the threads
        before and after it: the parts it deletes must not be left out by a later put."""
        policy = retention.RetentionPolicy.of(keep_last, older_than)
        forget = elements.forgetting(None)
        try:
            return (
                yield from retention.job(
                    self._st, policy, threads, dry_run=dry_run, progress=progress, override=override, veto=veto
                )
            )
        finally:
            forget(None)


def _strings(values: Any, what: str, *, allow_ints: bool = False) -> list[Any]:
    """A sequence argument, refusing a bare string (which would iterate by letter)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | set | frozenset):
        raise InvalidArgumentError(f"{what} must be a list of ids, not {type(values).__name__} {values!r:.60}")
    accepted = (str, int) if allow_ints else (str,)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, accepted) or value == "":
            raise InvalidArgumentError(f"{what} must contain non-empty strings, not {value!r:.60}")
    return list(values)


def checked_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """A metadata filter safe to express in SQL on every engine.

    Keys (also those of nested objects) are bound as JSON paths on SQLite and MySQL,
    where a double quote or a backslash cannot be escaped portably, so such keys are
    refused rather than guessed at. Values must be JSON that every engine can hold
    (`bounds.check_json`).
    """
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidFilterError(f"list: filter must be a dict, not {type(filter).__name__}")
    for key, value in filter.items():
        _check_filter_key(key, "list: filter key")
        bounds.check_json(value, f"list: filter[{key!r}]", error=InvalidFilterError)
        _check_nested_keys(value)
    return dict(filter)


def _check_filter_key(key: Any, what: str) -> None:
    if not isinstance(key, str) or not key or any(c in key for c in '"\\') or not key.isprintable():
        raise InvalidFilterError(
            f"{what} {key!r:.60} is not allowed; use a non-empty metadata key "
            "without double quotes, backslashes or control characters"
        )


def _check_nested_keys(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, member in value.items():
            _check_filter_key(key, "list: nested filter key")
            _check_nested_keys(member)
    elif isinstance(value, (list, tuple)):
        for member in value:
            _check_nested_keys(member)
