"""`RetryingSaver`: any LangGraph checkpointer, with transient database faults retried.

LangGraph fails a run on the first error a checkpointer raises, reads included, so a
connection that drops for a second (a failover, a restart, a pooler closing idle
connections, SQLite's write lock, a deadlock) costs a whole run. The wrapper runs every
call of the inner saver through a `RetryPolicy`.

Why repeating each call is safe, even when the failed attempt had in fact committed
and only its acknowledgement was lost (the operations are those of `SQLSaver`, each one
transaction; LangGraph's own SQL savers follow the same rules):

* reads (`get_tuple`, `list`, `get_delta_channel_history`) change nothing;
* `put` / `put_full` upsert the checkpoint row under its own id and insert-or-ignore
  blobs keyed by (channel, version), a version naming one value forever: storing the
  same checkpoint twice leaves the same rows;
* `put_writes` keeps the first write per (task, index) and overwrites only the special
  channels (errors, interrupts), with the same values on a repeat;
* `delete_thread`, `delete_for_runs` and `prune` converge: deleting what is already
  gone deletes nothing more, and `keep_latest` keeps the same latest checkpoint;
* `setup` runs idempotent migrations.

`copy_thread` is the exception: it refuses a target that already has checkpoints, so a
repeat after a lost acknowledgement would report `ThreadExistsError` for a copy that
succeeded. The wrapper checks that case instead of guessing (see `copy_thread`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from types import TracebackType
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
from sqlalchemy.engine import URL

from checkpoint_sql.errors import ConfigurationError, ThreadExistsError
from checkpoint_sql.retry.policy import LOGGER, RetryPolicy
from checkpoint_sql.retry.transient import Classifier
from checkpoint_sql.saver.sql_saver import SQLSaver

V = TypeVar("V", int, float, str)

Key = tuple[str, str, str]
"""A listed checkpoint's identity: (thread_id, checkpoint_ns, checkpoint_id)."""


class RetryingSaver(BaseCheckpointSaver[V]):
    """Wraps a checkpointer so that transient database faults are retried with
    exponential backoff; itself a complete checkpointer, sync and async.

    Args:
        inner: any `BaseCheckpointSaver` (an `SQLSaver`, LangGraph's `PostgresSaver`,
            ...). Its serializer is used as is.
        max_retries, base_delay, max_delay, jitter, is_transient, logger: the
            `RetryPolicy` settings (3 retries, 0.5 s doubling, at most 8 s apart, up
            to 0.25 s of jitter, the default classifier, ``checkpoint_sql.retry.policy``).
        policy: a ready `RetryPolicy` instead, e.g. the one the companion stores use;
            then leave the individual settings out.

    Every call is one retried unit: the whole transaction runs again, never part of one
    (why that is safe for each operation: see this module's docstring). A fault that
    outlasts the budget raises `RetryExhaustedError`, chaining the last fault; errors
    that are not transient are raised on the first attempt.

    Retrying helps when each attempt can get a new connection, as from `SQLSaver`'s pool
    or a saver built on a connection pool; a saver holding one connection that the
    server closed fails the same way on every attempt.
    """

    def __init__(
        self,
        inner: BaseCheckpointSaver[V],
        *,
        max_retries: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        jitter: float = 0.25,
        is_transient: Classifier | None = None,
        logger: logging.Logger = LOGGER,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.serde = inner.serde
        settings = RetryPolicy(
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            jitter=jitter,
            is_transient=is_transient,
            logger=logger,
        )
        if policy is not None and settings != RetryPolicy():
            raise ConfigurationError("RetryingSaver: pass either policy= or individual retry settings, not both")
        self.inner: BaseCheckpointSaver[V] = inner
        self.policy = policy or settings

    @classmethod
    def from_conn_string(
        cls, url: str | URL | None = None, *, policy: RetryPolicy | None = None, **saver_options: Any
    ) -> RetryingSaver[str]:
        """An `SQLSaver` for `url` (keyword arguments are `SQLSaver`'s), retried by
        `policy` (the defaults if None). Use it as ``with`` or ``async with`` so the
        engines are disposed at the end."""
        return RetryingSaver(SQLSaver.from_conn_string(url, **saver_options), policy=policy)

    def __repr__(self) -> str:
        return f"RetryingSaver({self.inner!r}, max_retries={self.policy.max_retries})"

    @property
    def config_specs(self) -> list[Any]:
        return list(self.inner.config_specs)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> RetryingSaver[V]:
        """The inner saver decodes values, so it is the inner saver that must learn the
        allowlist LangGraph passes when compiling a graph."""
        inner = self.inner.with_allowlist(extra_allowlist)
        return self if inner is self.inner else RetryingSaver(inner, policy=self.policy)

    # --- lifetime: whatever the inner saver does -------------------------------------------

    def __enter__(self) -> RetryingSaver[V]:
        if hasattr(self.inner, "__enter__"):
            self.inner.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if hasattr(self.inner, "__exit__"):
            self.inner.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> RetryingSaver[V]:
        if hasattr(self.inner, "__aenter__"):
            await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if hasattr(self.inner, "__aexit__"):
            await self.inner.__aexit__(exc_type, exc, tb)

    def close(self) -> None:
        """Close the inner saver, if it can be closed (an `SQLSaver` disposes the engines it created)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()

    def setup(self) -> None:
        """The inner saver's `setup` (idempotent migrations), retried; nothing if it has none."""
        setup = getattr(self.inner, "setup", None)
        if setup is None:
            return
        if inspect.iscoroutinefunction(setup):
            raise TypeError(f"{type(self.inner).__name__}.setup is async; call `await saver.asetup()`")
        self.policy.call(setup)

    async def asetup(self) -> None:
        asetup = getattr(self.inner, "asetup", None)
        setup = getattr(self.inner, "setup", None)
        if asetup is not None:
            await self.policy.acall(asetup)
        elif inspect.iscoroutinefunction(setup):
            await self.policy.acall(setup)
        elif setup is not None:
            self.policy.call(setup)

    # --- reading ------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.policy.call(self.inner.get_tuple, config)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.policy.acall(self.inner.aget_tuple, config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The inner listing, streamed; after a fault it resumes without repeating a checkpoint.

        A fault mid-listing restarts the inner listing with the same arguments and skips
        up to the last checkpoint already yielded. Resuming by position rather than
        with ``before=`` is deliberate: ``before=`` is exact only within one namespace
        of one thread, while a listing across threads (or of a copied thread, whose
        checkpoint ids repeat) has no order-independent cursor. Checkpoints written
        after the listing began that sort before that point are left out, as if the
        listing had been one snapshot.
        """

        def open_listing() -> Iterator[CheckpointTuple]:
            return iter(self.inner.list(config, filter=filter, before=before, limit=limit))

        return self._stream(self.policy.call(open_listing), open_listing)

    def _stream(
        self, listing: Iterator[CheckpointTuple], reopen: Callable[[], Iterator[CheckpointTuple]]
    ) -> Iterator[CheckpointTuple]:
        resume = _Resume()
        current: Iterator[CheckpointTuple] | None = listing

        def fetch() -> list[CheckpointTuple]:
            nonlocal current
            if current is None:
                current = reopen()
                resume.restart()
            try:
                for item in current:
                    if resume.accept(item):
                        return [item]
                return resume.end()
            except BaseException:
                _close(current)
                current = None
                raise

        try:
            while batch := self.policy.call(fetch):
                for item in batch:
                    resume.yielded(item)
                    yield item
        finally:
            _close(current)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """`list`, async, with the same resumption after a fault. Opening an async
        listing does no I/O, so only fetching from it is retried."""

        def open_listing() -> AsyncIterator[CheckpointTuple]:
            return aiter(self.inner.alist(config, filter=filter, before=before, limit=limit))

        return self._astream(open_listing(), open_listing)

    async def _astream(
        self, listing: AsyncIterator[CheckpointTuple], reopen: Callable[[], AsyncIterator[CheckpointTuple]]
    ) -> AsyncIterator[CheckpointTuple]:
        resume = _Resume()
        current: AsyncIterator[CheckpointTuple] | None = listing

        async def fetch() -> list[CheckpointTuple]:
            nonlocal current
            if current is None:
                current = reopen()
                resume.restart()
            try:
                async for item in current:
                    if resume.accept(item):
                        return [item]
                return resume.end()
            except BaseException:
                await _aclose(current)
                current = None
                raise

        try:
            while batch := await self.policy.acall(fetch):
                for item in batch:
                    resume.yielded(item)
                    yield item
        finally:
            await _aclose(current)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.policy.call(self.inner.get_delta_channel_history, config=config, channels=channels)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self.policy.acall(self.inner.aget_delta_channel_history, config=config, channels=channels)

    # --- writing ------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.policy.call(self.inner.put, config, checkpoint, metadata, new_versions)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.policy.acall(self.inner.aput, config, checkpoint, metadata, new_versions)

    def put_full(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[Sequence[Any]],
    ) -> RunnableConfig:
        """The inner saver's `put_full` (checkpoint and writes in one transaction)."""
        put_full = self._inner_method("put_full")
        result: RunnableConfig = self.policy.call(put_full, config, checkpoint, metadata, new_versions, writes)
        return result

    async def aput_full(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[Sequence[Any]],
    ) -> RunnableConfig:
        aput_full = self._inner_method("aput_full")
        result: RunnableConfig = await self.policy.acall(aput_full, config, checkpoint, metadata, new_versions, writes)
        return result

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.policy.call(self.inner.put_writes, config, writes, task_id, task_path)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.policy.acall(self.inner.aput_writes, config, writes, task_id, task_path)

    # --- deleting and copying -------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        self.policy.call(self.inner.delete_thread, thread_id)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.policy.acall(self.inner.adelete_thread, thread_id)

    def delete_lineage(self, thread_id: str) -> None:
        """`delete_thread` under its lineage name (a lineage is a LangGraph thread)."""
        self.policy.call(getattr(self.inner, "delete_lineage", self.inner.delete_thread), thread_id)

    async def adelete_lineage(self, thread_id: str) -> None:
        await self.policy.acall(getattr(self.inner, "adelete_lineage", self.inner.adelete_thread), thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.policy.call(self.inner.delete_for_runs, run_ids)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.policy.acall(self.inner.adelete_for_runs, run_ids)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.policy.call(self.inner.prune, thread_ids, strategy=strategy)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self.policy.acall(self.inner.aprune, thread_ids, strategy=strategy)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """The inner `copy_thread`, retried; a repeat that finds the copy already made
        by an attempt whose acknowledgement was lost counts as success.

        The inner saver refuses a target that already has checkpoints
        (`ThreadExistsError`). When that refusal comes on a *repeat*, the wrapper
        compares the two threads: if the target holds exactly the source's checkpoints
        (same namespaces and ids) the earlier attempt committed, and the call succeeds;
        otherwise the refusal stands. On a first attempt it always stands.
        """
        interrupted = False

        def attempt() -> None:
            nonlocal interrupted
            try:
                self.inner.copy_thread(source_thread_id, target_thread_id)
            except ThreadExistsError:
                if interrupted and self._listed(source_thread_id) == self._listed(target_thread_id):
                    return
                raise
            except BaseException:
                interrupted = True
                raise

        self.policy.call(attempt)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        interrupted = False

        async def attempt() -> None:
            nonlocal interrupted
            try:
                await self.inner.acopy_thread(source_thread_id, target_thread_id)
            except ThreadExistsError:
                if interrupted and await self._alisted(source_thread_id) == await self._alisted(target_thread_id):
                    return
                raise
            except BaseException:
                interrupted = True
                raise

        await self.policy.acall(attempt)

    def _listed(self, thread_id: str) -> set[tuple[str, str]]:
        listing = self.inner.list({"configurable": {"thread_id": thread_id}})
        return {(t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"]) for t in listing}

    async def _alisted(self, thread_id: str) -> set[tuple[str, str]]:
        listing = self.inner.alist({"configurable": {"thread_id": thread_id}})
        return {
            (t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"])
            async for t in listing
        }

    # --- versions -------------------------------------------------------------------------

    def get_next_version(self, current: V | None, channel: None) -> V:
        """The inner saver's versions (no database involved, nothing to retry)."""
        return self.inner.get_next_version(current, channel)

    def _inner_method(self, name: str) -> Callable[..., Any]:
        method = getattr(self.inner, name, None)
        if method is None:
            raise NotImplementedError(f"{type(self.inner).__name__} has no {name}()")
        return method  # type: ignore[no-any-return]


class _Resume:
    """Which items of a (re)started listing may be yielded, so that no checkpoint is
    yielded twice.

    After a restart, items up to and including the last one yielded are skipped. Should
    that one have disappeared meanwhile (deleted), the restarted listing is read to its
    end and whatever it holds that was not yielded yet comes out then.
    """

    def __init__(self) -> None:
        self.seen: set[Key] = set()
        self.last: Key | None = None
        self.catching_up = False
        self.held: list[CheckpointTuple] = []

    def restart(self) -> None:
        self.catching_up = self.last is not None
        self.held = []

    def accept(self, item: CheckpointTuple) -> bool:
        key = _key(item)
        if self.catching_up:
            if key == self.last:
                self.catching_up = False
                self.held = []
            elif key not in self.seen:
                self.held.append(item)
            return False
        return key not in self.seen

    def end(self) -> list[CheckpointTuple]:
        held, self.held, self.catching_up = self.held, [], False
        return held

    def yielded(self, item: CheckpointTuple) -> None:
        self.last = _key(item)
        self.seen.add(self.last)


def _key(item: CheckpointTuple) -> Key:
    configurable = item.config["configurable"]
    return (str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""), configurable["checkpoint_id"])


def _close(listing: Iterator[CheckpointTuple] | None) -> None:
    close = getattr(listing, "close", None)
    if close is not None:
        close()


async def _aclose(listing: AsyncIterator[CheckpointTuple] | None) -> None:
    aclose = getattr(listing, "aclose", None)
    if aclose is not None:
        await aclose()
