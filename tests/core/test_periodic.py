"""The rules every sweeper runs by (`checkpoint_sql.core.periodic.Periodic`), thread and
task alike: the first sweep at start, a second start, stopping with a timeout,
cancellation, and failed sweeps. The sweeps here are plain functions, so each rule is
seen without a database; tests/test_retention.py and tests/test_store_features.py run
the real sweepers on each engine."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest

from checkpoint_sql import ConfigurationError
from checkpoint_sql.core.periodic import Periodic, Run

HOUR = 3600.0
log = logging.getLogger("checkpoint_sql.tests.periodic")


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def aeventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class Sweeps:
    """Records the sweeps a runner makes; `block` holds a sweep until released."""

    def __init__(self, *, failures: int = 0) -> None:
        self.runs: list[Run] = []
        self.failures = failures
        self.block = threading.Event()
        self.block.set()
        self.ended = 0

    def sweep(self, run: Run) -> None:
        self.runs.append(run)
        try:
            self.block.wait()
            if len(self.runs) <= self.failures:
                raise RuntimeError("database briefly down")
        finally:
            self.ended += 1

    async def asweep(self, run: Run) -> None:
        self.runs.append(run)
        try:
            while not self.block.is_set():
                await asyncio.sleep(0.01)
            if len(self.runs) <= self.failures:
                raise RuntimeError("database briefly down")
        finally:
            self.ended += 1

    def runner(self) -> Periodic:
        return Periodic("test-sweeper", self.sweep, self.asweep, log=log)


# --- the first sweep, and a second start --------------------------------------------------


def test_the_thread_sweeps_at_start_then_once_per_interval() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    runner.start(0.05)
    assert eventually(lambda: len(sweeps.runs) >= 3)
    assert runner.stop(timeout=5) and not runner.running

    hourly = Sweeps()
    slow = hourly.runner()
    slow.start(HOUR)
    assert eventually(lambda: len(hourly.runs) == 1), "the first sweep does not wait an interval"
    assert slow.stop(timeout=5) and len(hourly.runs) == 1


async def test_the_task_sweeps_at_start_then_once_per_interval() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    await runner.astart(HOUR)
    assert await aeventually(lambda: len(sweeps.runs) == 1), "the first sweep does not wait an interval"
    assert await runner.astop(timeout=5) and len(sweeps.runs) == 1


def test_a_second_start_returns_the_running_threads_future_and_keeps_its_interval() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    first = runner.start(HOUR)
    assert runner.start(0.01) is first
    time.sleep(0.2)
    assert len(sweeps.runs) == 1 and {run.interval for run in sweeps.runs} == {HOUR}
    assert runner.stop(timeout=5) and first.done()


async def test_a_second_start_returns_the_running_task() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    task = await runner.astart(HOUR)
    assert await runner.astart(0.01) is task
    await asyncio.sleep(0.2)
    assert len(sweeps.runs) == 1
    assert await runner.astop(timeout=5) and task.done()


async def test_a_thread_and_a_task_never_sweep_side_by_side() -> None:
    runner = Sweeps().runner()
    runner.start(HOUR)
    with pytest.raises(ConfigurationError, match="already runs as a thread"):
        await runner.astart(HOUR)
    assert runner.stop(timeout=5)
    await runner.astart(HOUR)
    with pytest.raises(ConfigurationError, match="already runs as an asyncio task"):
        runner.start(HOUR)
    assert await runner.astop(timeout=5)


def test_a_stopped_runner_starts_afresh() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    first = runner.start(HOUR)
    assert eventually(lambda: len(sweeps.runs) == 1) and runner.stop(timeout=5)
    second = runner.start(HOUR)
    assert second is not first
    assert eventually(lambda: len(sweeps.runs) == 2), "it sweeps at its new start"
    assert runner.stop(timeout=5)


# --- stopping -----------------------------------------------------------------------------


def test_stopping_nothing_is_a_success() -> None:
    assert Sweeps().runner().stop(timeout=0)


async def test_astopping_nothing_is_a_success() -> None:
    assert await Sweeps().runner().astop(timeout=0)


def test_stop_waits_for_the_sweep_in_progress_which_sees_it_was_asked_to_stop() -> None:
    seen: list[bool] = []

    def sweep(run: Run) -> None:
        while not run.stopping():  # a long sweep, ending early between two steps
            time.sleep(0.01)
        seen.append(run.stopping())

    runner = Periodic("test-sweeper", sweep, Sweeps().asweep, log=log)
    runner.start(HOUR)
    time.sleep(0.05)
    assert runner.stop() and seen == [True]


def test_a_stop_that_times_out_leaves_the_thread_to_end_after_its_sweep() -> None:
    sweeps = Sweeps()
    sweeps.block.clear()
    runner = sweeps.runner()
    done = runner.start(HOUR)
    assert eventually(lambda: len(sweeps.runs) == 1)
    assert not runner.stop(timeout=0.05), "the sweep at hand outlasts the timeout"
    assert runner.running and not done.done()
    with pytest.raises(ConfigurationError, match="still finishing"):
        runner.start(HOUR)
    sweeps.block.set()
    assert runner.stop(timeout=5), "stop again waits for it"
    assert done.done() and sweeps.ended == 1 and len(sweeps.runs) == 1, "no sweep after the stop"


async def test_astop_lets_the_sweep_in_progress_finish_within_the_timeout() -> None:
    sweeps = Sweeps()
    sweeps.block.clear()
    runner = sweeps.runner()
    task = await runner.astart(HOUR)
    assert await aeventually(lambda: len(sweeps.runs) == 1)
    asyncio.get_running_loop().call_later(0.05, sweeps.block.set)
    assert await runner.astop(timeout=5)
    assert task.done() and not task.cancelled() and sweeps.ended == 1


async def test_astop_cancels_a_sweep_that_outlasts_the_timeout_and_returns_once_it_ended() -> None:
    sweeps = Sweeps()
    sweeps.block.clear()
    runner = sweeps.runner()
    task = await runner.astart(HOUR)
    assert await aeventually(lambda: len(sweeps.runs) == 1)
    assert not await runner.astop(timeout=0.05)
    assert task.cancelled() and sweeps.ended == 1, "its finally blocks ran before astop returned"
    assert not runner.running


async def test_a_cancelled_astop_cancels_the_sweep_too() -> None:
    sweeps = Sweeps()
    sweeps.block.clear()
    runner = sweeps.runner()
    task = await runner.astart(HOUR)
    assert await aeventually(lambda: len(sweeps.runs) == 1)
    stopping = asyncio.get_running_loop().create_task(runner.astop())
    await asyncio.sleep(0.05)
    stopping.cancel()
    await asyncio.wait({stopping, task})
    assert stopping.cancelled() and task.cancelled(), "the sweep does not outlive the shutdown that awaited it"


# --- cancellation -------------------------------------------------------------------------


async def test_cancelling_the_task_stops_the_runner_and_a_new_start_runs_afresh() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    task = await runner.astart(HOUR)
    assert await aeventually(lambda: len(sweeps.runs) == 1)
    task.cancel()
    await asyncio.wait({task})
    assert not runner.running and await runner.astop(timeout=0)
    again = await runner.astart(HOUR)
    assert again is not task
    assert await aeventually(lambda: len(sweeps.runs) == 2)
    assert await runner.astop(timeout=5)


def test_cancelling_the_future_stops_the_thread() -> None:
    sweeps = Sweeps()
    runner = sweeps.runner()
    done = runner.start(HOUR)
    assert eventually(lambda: len(sweeps.runs) == 1)
    assert done.cancel()
    assert eventually(lambda: not runner.running), "the thread ends"
    assert runner.stop(timeout=0) and len(sweeps.runs) == 1


# --- failures -----------------------------------------------------------------------------


def test_a_failed_sweep_is_logged_and_the_thread_sweeps_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)
    sweeps = Sweeps(failures=2)
    runner = sweeps.runner()
    runner.start(0.02)
    assert eventually(lambda: len(sweeps.runs) >= 3), "two failures do not end it"
    assert runner.running and runner.stop(timeout=5)
    failed = [r for r in caplog.records if r.name == log.name]
    assert len(failed) == 2 and all(r.levelno == logging.WARNING and r.exc_info for r in failed)
    assert "test-sweeper: sweep failed" in failed[0].getMessage()


async def test_a_failed_sweep_is_logged_and_the_task_sweeps_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)
    sweeps = Sweeps(failures=2)
    runner = sweeps.runner()
    task = await runner.astart(0.02)
    assert await aeventually(lambda: len(sweeps.runs) >= 3), "two failures do not end it"
    assert not task.done() and await runner.astop(timeout=5)
    assert len([r for r in caplog.records if r.name == log.name and r.exc_info]) == 2
