"""Work described once and run on the sync or the async engine.

A public method of the saver or of a store validates and serializes its input, then
describes its transaction as a `Call`: the operation (a function of a sync
`Connection`), its arguments, the transaction's `Intent`, and what to make of the
result. `DatabaseClient._run` runs the call on the sync engine and `_arun` on the
async one, so each method pair is two one-liners around logic written once.

Work that takes several transactions (pruning, retention, an export or an import,
one transaction per thread; a sweep under a lease) is a *job*: a generator that yields
calls and is sent back their results, driven by `drive` or `adrive`
(`DatabaseClient._drive`, `_adrive`). What happens between two transactions (a
callback, a progress report, writing a record out) is plain code in the generator,
written once for both.

`DatabaseClient` is also where the saver, the stores and `Storage` decide who disposes
the engines: whoever built the `Database` from a URL or engines, never a borrower.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from typing_extensions import Self

from checkpoint_sql.core.database import Database, Source
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.intent import Intent

R = TypeVar("R")
T = TypeVar("T")

Target = Source | Database
"""What the saver and the stores are built on: what a `Database` is built from, or a
`Database` shared with others."""


def same(value: T) -> T:
    return value


@dataclass(slots=True)
class Call(Generic[R, T]):
    """One transaction of one operation, and what to make of its result."""

    op: Callable[..., R]
    args: tuple[Any, ...]
    finish: Callable[[R], T] = same  # type: ignore[assignment]
    intent: Intent = Intent.READ
    raw: bool = False
    """The operation takes a DBAPI `Link` (the hot path), not a `Connection`: a fact
    about its signature, not its transaction, so it stays apart from `intent`."""

    def on(self, db: Database) -> T:
        return self.finish(db.run(self.op, *self.args, intent=self.intent, raw=self.raw))

    async def aon(self, db: Database) -> T:
        return self.finish(await db.arun(self.op, *self.args, intent=self.intent, raw=self.raw))


Job = Generator[Call[Any, Any], Any, R]
"""Work of several transactions: yields each call, is sent its result, returns R."""


def each(calls: Iterable[Call[Any, Any]]) -> Job[None]:
    """A job of calls that need nothing from each other's results, run in order."""
    # Not `yield from`: it would pass each result sent back on to `calls`.
    for call in calls:  # noqa: UP028
        yield call


Progress = Callable[[int, int], None]
"""What a job reports after each unit (a thread): (done, total; 0 if unknown)."""


def drive(db: Database, job: Job[R]) -> R:
    """Run `job` to completion on the sync engine and return its result.

    A call that fails raises inside the job, where it yielded, so that a job cleans up
    after a failed transaction (gives a lease back) with try/finally, as any code would.
    """
    try:
        call = next(job)
        while True:
            try:
                result = call.on(db)
            except BaseException as exc:
                call = job.throw(exc)
            else:
                call = job.send(result)
    except StopIteration as done:
        finished: R = done.value
        return finished


async def adrive(db: Database, job: Job[R]) -> R:
    """Run `job` to completion on the async engine and return its result (see `drive`)."""
    try:
        call = next(job)
        while True:
            try:
                result = await call.aon(db)
            except BaseException as exc:
                call = job.throw(exc)
            else:
                call = job.send(result)
    except StopIteration as done:
        finished: R = done.value
        return finished


class DatabaseClient:
    """Base of everything built on a `Database`: the saver, the stores, `Storage`.

    Built from a URL or engines, it owns its `Database` and disposes the engines it
    created on `close`; given a `Database`, it shares it and leaves it open.
    """

    db: Database
    _owns_db: bool

    def _use_database(
        self, target: Target, *, async_engine: AsyncEngine | None, engine_options: EngineOptions | None
    ) -> None:
        self._owns_db = not isinstance(target, Database)
        self.db = (
            target
            if isinstance(target, Database)
            else Database(target, async_engine=async_engine, options=engine_options)
        )

    def _run(self, call: Call[Any, T]) -> T:
        return call.on(self.db)

    async def _arun(self, call: Call[Any, T]) -> T:
        return await call.aon(self.db)

    def _drive(self, job: Job[R]) -> R:
        return drive(self.db, job)

    async def _adrive(self, job: Job[R]) -> R:
        return await adrive(self.db, job)

    def close(self) -> None:
        """Dispose the engines this object created (engines or a `Database` passed in
        are left open for their owner)."""
        if self._owns_db:
            self.db.close()

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
