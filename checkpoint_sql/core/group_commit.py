"""Group commit for the SQLite writers of one process.

SQLite admits one writer at a time, and at ``synchronous=FULL`` every commit costs an
fsync, which dwarfs the statements it makes durable. LangGraph writes from several
threads or tasks at once (a task's pending writes while the previous checkpoint is
being saved; many runs in one service). Left to SQLite, those writers would wait in
its busy handler, which sleeps 1, 2, 5, 10... ms between polls, and then pay one fsync
each.

Here they queue instead. The writer at the head of the queue (the leader) takes every
write queued behind it that may share a transaction, runs them in one
``BEGIN IMMEDIATE ... COMMIT``, then hands the lead to the next writer in line. If an
operation of a shared transaction raises, the whole transaction is rolled back and
each of its writes runs again in a transaction of its own, so only the failing
operation's caller sees an error. Failures are rare (input is checked before any SQL),
so the common case pays no SAVEPOINT/RELEASE per operation: four statements, about
0.1 ms, per pair of writes sharing a commit, measured in the agent loop. Every caller returns only after the commit that
holds its operation: each write is exactly as atomic and as durable as on its own,
and concurrent writers share the fsync. Sync threads and async tasks share one queue
per database file; an async caller waits on a future, never blocking its event loop,
and leads by running the batch on the sync engine in a worker thread (see
`Database.arun`). Other processes are not part of the queue; they wait through
``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from checkpoint_sql.core.links import Link


@dataclass(eq=False)
class Write:
    """One queued operation, and how its caller is woken."""

    op: Callable[..., Any]
    args: tuple[Any, ...]
    alone: bool
    """Runs in a transaction of its own (migrations, bulk deletes), not in a group."""
    raw: bool = False
    """The operation takes a DBAPI `Link`, not an SQLAlchemy `Connection`."""
    outcome: tuple[bool, Any] | None = None
    lead: bool = False
    _event: threading.Event | None = None
    _future: asyncio.Future[None] | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        if self._future is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, self._future)
        elif self._event is not None:
            self._event.set()

    def result(self) -> Any:
        assert self.outcome is not None
        ok, value = self.outcome
        if not ok:
            raise value
        return value


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


Executor = Callable[[list[Write]], None]
"""Runs a batch in one transaction, setting each write's outcome."""


class GroupCommit:
    """The write queue of one SQLite database file in this process."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._queue: deque[Write] = deque()
        self._busy = False

    def run(self, write: Write, execute: Executor) -> Any:
        """Queue `write` from a thread; returns once it is committed (or raises)."""
        write._event = threading.Event()
        if not self._enqueue(write):
            write._event.wait()
            if not write.lead:
                return write.result()
        self._lead(execute)
        return write.result()

    async def arun(self, write: Write, execute: Callable[[list[Write]], Awaitable[None]]) -> Any:
        """Queue `write` from a coroutine; the same, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        write._loop, write._future = loop, loop.create_future()
        if not self._enqueue(write):
            try:
                await write._future
            except asyncio.CancelledError:
                if not self._withdraw(write):
                    await asyncio.shield(self._alead(execute))  # we hold the lead: pass it on
                raise
            if not write.lead:
                return write.result()
        await self._alead(execute)
        return write.result()

    def _enqueue(self, write: Write) -> bool:
        """Queue `write`; True if its caller must lead now (nobody else is writing)."""
        with self._guard:
            self._queue.append(write)
            if self._busy:
                return False
            self._busy = write.lead = True
            return True

    def _withdraw(self, write: Write) -> bool:
        """Take a cancelled caller's write out of the queue; False if it holds the lead
        (and must still run a batch so the others are not stranded)."""
        with self._guard:
            if write.lead:
                return False
            if write in self._queue:
                self._queue.remove(write)
            return True

    def _batch(self) -> list[Write]:
        """The leader's write and every write queued behind it that may share its
        transaction (a write that must run alone is taken alone)."""
        with self._guard:
            batch = [self._queue.popleft()]
            if not batch[0].alone:
                while self._queue and not self._queue[0].alone:
                    batch.append(self._queue.popleft())
            return batch

    def _hand_over(self, batch: list[Write]) -> None:
        """Wake the batch's other callers, then the next writer in line, as leader."""
        for write in batch[1:]:
            write.wake()
        with self._guard:
            if not self._queue:
                self._busy = False
                return
            successor = self._queue[0]
            successor.lead = True
        successor.wake()

    def _lead(self, execute: Executor) -> None:
        batch = self._batch()
        try:
            try:
                execute(batch)
            except Exception:
                failed = _failed_write(batch)
                if failed is None or len(batch) == 1:
                    raise  # BEGIN or COMMIT failed (or the batch was one write): all failed
                for write in batch:  # rolled back with the failed one: each again, alone
                    if write is not failed:
                        try:
                            execute([write])
                        except Exception as exc:
                            write.outcome = (False, exc)
        except BaseException as exc:
            _fail(batch, exc)
        finally:
            self._hand_over(batch)

    async def _alead(self, execute: Callable[[list[Write]], Awaitable[None]]) -> None:
        batch = self._batch()
        try:
            try:
                await execute(batch)
            except Exception:
                failed = _failed_write(batch)
                if failed is None or len(batch) == 1:
                    raise  # BEGIN or COMMIT failed (or the batch was one write): all failed
                for write in batch:
                    if write is not failed:
                        try:
                            await execute([write])
                        except Exception as exc:
                            write.outcome = (False, exc)
        except BaseException as exc:
            _fail(batch, exc)
        finally:
            self._hand_over(batch)


def _failed_write(batch: list[Write]) -> Write | None:
    """The write whose operation raised inside the batch's transaction (`run_batch`), if
    it was one of them and not BEGIN or COMMIT."""
    return next((w for w in batch if w.outcome is not None and not w.outcome[0]), None)


def _fail(batch: list[Write], exc: BaseException) -> None:
    """The transaction failed and was not run again (a batch of one, or an interrupt):
    every write in it failed with it."""
    for write in batch:
        write.outcome = (False, exc)


def run_batch(link: Link, batch: list[Write], conn: Connection | None) -> None:
    """Every write of `batch`, in order, inside the caller's transaction. The first that
    raises keeps its error and ends the transaction; the leader then runs each of the
    others again in a transaction of its own (`GroupCommit._lead`).

    Hot operations run on `link`, the others on `conn`, the SQLAlchemy `Connection`
    over the same DBAPI connection (None when every write in the batch is raw)."""
    for write in batch:
        try:
            write.outcome = (True, write.op(_target(write, link, conn), *write.args))
        except Exception as exc:
            write.outcome = (False, exc)  # its caller's error, whatever becomes of the others
            raise


def _target(write: Write, link: Link, conn: Connection | None) -> Link | Connection:
    if write.raw:
        return link
    assert conn is not None, "a Core operation in a batch run without a Connection"
    return conn
