"""Interleaved sampling: every repetition runs every case once, round-robin.

A *case* is one contender on one measurement (a saver running the agent loop, a saver
running `put`, ...). Its `sample` callable does any untimed preparation itself and
returns the seconds of the timed part, per unit of work: a float (wall time: `timed`,
`timed_each`, `atimed`), or a `Sample` holding the wall time and the process CPU time of
the same run (`timed_cpu`, `atimed_cpu`). Whatever a case returns is kept whole, so the
figures of one run stay together and warm-up rounds drop all of them. Async cases run
on the one event loop of the run (`Loop`), so that every async saver stays on the loop
its connections belong to.

Repetition r runs the cases starting at position r (a rotation), so no case is always
first after a slow neighbour.

Between repetitions the functions in `between_rounds` run (untimed): the database
maintenance a production server does on its own (see `cli.py`: ANALYZE on PostgreSQL,
whose autovacuum may be off on a test machine). Garbage is collected before every
sample, and the heap that exists when a round starts is frozen (`gc.freeze`) so that a
collection costs microseconds instead of the ~0.2 s a full one takes in this process.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
S = TypeVar("S")


class Loop:
    """The run's event loop, driven from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


between_rounds: list[Callable[[], None]] = []
"""Untimed maintenance run after every round of every workload."""


@dataclass
class Case(Generic[S]):
    key: str
    sample: Callable[[], S]


@dataclass(frozen=True)
class Sample:
    """One timed run, per unit of work: wall seconds, and the process CPU seconds (user +
    sys, every thread: `time.process_time`) spent meanwhile. CPU time counts only this
    process: a database server's own work shows in the wall time alone."""

    wall: float
    cpu: float


def walls(samples: Sequence[Sample]) -> list[float]:
    return [s.wall for s in samples]


def cpus(samples: Sequence[Sample]) -> list[float]:
    return [s.cpu for s in samples]


def timed(fn: Callable[[], Any], units: int = 1) -> float:
    """Seconds per unit of one call of `fn`."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / units


def timed_each(call: Callable[[int], object], n: int) -> float:
    """Seconds per call of `call(0)`, ..., `call(n - 1)`, timed together."""
    start = time.perf_counter()
    for i in range(n):
        call(i)
    return (time.perf_counter() - start) / n


def atimed(loop: Loop, fn: Callable[[], Awaitable[Any]], units: int = 1) -> float:
    """Seconds per unit of one awaited call of `fn`, timed inside the loop."""

    async def measure() -> float:
        start = time.perf_counter()
        await fn()
        return (time.perf_counter() - start) / units

    return loop.run(measure())


def timed_cpu(fn: Callable[[], Any], units: int = 1) -> Sample:
    """Wall and process CPU seconds per unit of one call of `fn`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Sample((time.perf_counter() - wall) / units, (time.process_time() - cpu) / units)


def atimed_cpu(loop: Loop, fn: Callable[[], Awaitable[Any]], units: int = 1) -> Sample:
    """Wall and process CPU seconds per unit of one awaited call of `fn`, inside the loop."""

    async def measure() -> Sample:
        wall, cpu = time.perf_counter(), time.process_time()
        await fn()
        return Sample((time.perf_counter() - wall) / units, (time.process_time() - cpu) / units)

    return loop.run(measure())


def interleave(
    cases: Sequence[Case[S]], *, reps: int, warmup: int, label: str, quiet: bool = False
) -> dict[str, list[S]]:
    """Run `warmup` untimed rounds, then `reps` timed rounds of every case, rotating the
    starting case each round; returns each case's samples in round order (what the
    warm-up rounds returned is dropped whole)."""
    samples: dict[str, list[S]] = {c.key: [] for c in cases}
    rounds = warmup + reps
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task(label, total=rounds * len(cases))
        try:
            for r in range(rounds):
                gc.collect()
                gc.freeze()
                start = r % len(cases) if cases else 0
                for case in [*cases[start:], *cases[:start]]:
                    gc.collect()
                    value = case.sample()
                    if r >= warmup:
                        samples[case.key].append(value)
                    progress.advance(task)
                for maintain in between_rounds:
                    maintain()
        finally:
            gc.unfreeze()
    return samples
