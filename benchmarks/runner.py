"""Interleaved sampling: every repetition runs every case once, round-robin.

A *case* is one contender on one measurement (a saver running the agent loop, a saver
running `put`, ...). Its `sample` callable does any untimed preparation itself and
returns the seconds of the timed part, per unit of work. Async cases run on the one
event loop of the run (`Loop`), so that every async saver stays on the loop its
connections belong to.

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
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


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
class Case:
    key: str
    sample: Callable[[], float]


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


def interleave(
    cases: Sequence[Case], *, reps: int, warmup: int, label: str, quiet: bool = False
) -> dict[str, list[float]]:
    """Run `warmup` untimed rounds, then `reps` timed rounds of every case, rotating the
    starting case each round; returns each case's samples in round order."""
    samples: dict[str, list[float]] = {c.key: [] for c in cases}
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
