"""Jobs: work that needs several transactions, written once for sync and async.

Retention, export and import touch many threads. Holding one transaction for all of
them would block SQLite writers and bloat a server's undo log for the whole run, so
they take one transaction per thread. A *job* is a generator that yields `Step`s (an
operation with its arguments and transaction mode, as `Database.run` takes them) and
is sent each step's result back; `drive` runs the steps on the sync engine, `adrive`
on the async one. The job's logic, including what it does between transactions
(progress, deciding the next step), therefore exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from checkpoint_sql.database import Database

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Step(Generic[T]):
    """One transaction of a job: `op(conn, *args)` in the given mode."""

    op: Callable[..., T]
    args: tuple[Any, ...]
    write: bool = False
    snapshot: bool = False
    single: bool = False


Job = Generator[Step[Any], Any, R]

Progress = Callable[[int, int], None]
"""What a job reports after each thread: (threads done, threads in all; 0 if unknown)."""


def drive(db: Database, job: Job[R]) -> R:
    """Run `job` to completion on the sync engine and return its result."""
    try:
        step = next(job)
        while True:
            step = job.send(db.run(step.op, *step.args, write=step.write, snapshot=step.snapshot, single=step.single))
    except StopIteration as done:
        result: R = done.value
        return result


async def adrive(db: Database, job: Job[R]) -> R:
    """Run `job` to completion on the async engine and return its result."""
    try:
        step = next(job)
        while True:
            result = await db.arun(step.op, *step.args, write=step.write, snapshot=step.snapshot, single=step.single)
            step = job.send(result)
    except StopIteration as done:
        value: R = done.value
        return value
