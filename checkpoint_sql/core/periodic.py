"""`Periodic`: the one background loop every sweeper runs on, so the retention sweeper
and the stores' TTL sweeper start, stop and fail by the same rules. A sweeper gives it
one sweep, sync and async; what a sweep does (taking a lease, skipping when another
replica holds it) stays with the sweeper.

The rules, for the daemon thread of `start` and the asyncio task of `astart` alike:

* **The first sweep runs at start**, and each next one `interval` seconds after the
  end of the previous one. A process that lives less than one interval (a job, a
  replica redeployed often) still sweeps; the sweepers' leases keep a fleet that
  restarts together from sweeping more than once per interval.
* **A second start while the loop runs changes nothing** and returns the running
  loop's handle (its interval stays), so starting from several places is safe. A
  start raises `ConfigurationError` while the loop of the other kind runs, or while
  a stop that timed out still waits for its last sweep: two loops would sweep twice.
* **Stopping** asks the loop to end and waits for the sweep in progress, which may
  end early by checking `Run.stopping`. `stop(timeout)` returns False if the thread
  has not ended within `timeout` seconds: a thread cannot be interrupted, so it ends
  on its own after that sweep (call `stop` again to wait for it). `astop(timeout)`
  cancels the task after `timeout` seconds and returns False once it has ended: when
  `astop` returns, nothing of the sweeper runs any more, so the engines can be
  disposed.
* **Cancelling** the task ends it where it is: the sweep unwinds through its
  ``finally`` blocks (a sweeper's lease is released there), and nothing is logged,
  since it was asked for. Cancelling the future `start` returns is a `stop` that
  does not wait.
* **A failed sweep is logged** (a warning with its traceback) and the next one runs
  on schedule: a database that is briefly down must not end sweeping for the life of
  the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from checkpoint_sql.errors import ConfigurationError


@dataclass(frozen=True)
class Run:
    """One start of a `Periodic`, as its sweeps see it."""

    interval: float
    """Seconds between the end of one sweep and the start of the next."""
    stopping: Callable[[], bool]
    """Whether a stop was asked for: a long sweep checks it between two steps to end
    early, never leaving a step half-way."""


@dataclass(frozen=True)
class _ThreadLoop:
    thread: threading.Thread
    stop: threading.Event
    done: concurrent.futures.Future[None]

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


@dataclass(frozen=True)
class _TaskLoop:
    task: asyncio.Task[None]
    stop: asyncio.Event

    @property
    def alive(self) -> bool:
        return not self.task.done()


_Loop = TypeVar("_Loop", _ThreadLoop, _TaskLoop)
_KIND = {_ThreadLoop: "a thread", _TaskLoop: "an asyncio task"}


class Periodic:
    """Run `sweep` (on a daemon thread) or `asweep` (as a task of the running event
    loop) periodically, by the module's rules. `name` names the thread or task and
    the failures logged on `log`."""

    def __init__(
        self,
        name: str,
        sweep: Callable[[Run], object],
        asweep: Callable[[Run], Awaitable[object]],
        *,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self._sweep_once, self._asweep_once, self._log = sweep, asweep, log
        self._lock = threading.Lock()
        """Keeps two starts racing from two threads from both starting a loop."""
        self._thread: _ThreadLoop | None = None
        self._task: _TaskLoop | None = None

    @property
    def running(self) -> bool:
        """Whether a loop is alive (including one that was asked to stop and is
        finishing its sweep)."""
        return any(loop is not None and loop.alive for loop in (self._thread, self._task))

    def _running(self, mine: _Loop | None, other: _ThreadLoop | _TaskLoop | None) -> _Loop | None:
        """The loop a start hands back (None: start one); raises if a new loop would
        sweep beside one still running."""
        if other is not None and other.alive:
            raise ConfigurationError(f"{self.name} already runs as {_KIND[type(other)]}; stop it first")
        if mine is None or not mine.alive:
            return None
        if mine.stop.is_set():
            raise ConfigurationError(f"{self.name} is still finishing the sweep it was stopped during; stop it again")
        return mine

    def _failed(self, run: Run) -> None:
        self._log.warning("%s: sweep failed; the next one runs in %g s", self.name, run.interval, exc_info=True)

    # --- sync -----------------------------------------------------------------------------

    def start(self, interval: float) -> concurrent.futures.Future[None]:
        """Sweep now and then every `interval` seconds on a daemon thread; the future
        completes when the thread ends, and cancelling it stops the thread."""
        with self._lock:
            running = self._running(self._thread, self._task)
            if running is not None:
                return running.done
            stop = threading.Event()
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.add_done_callback(lambda future: stop.set() if future.cancelled() else None)
            run = Run(interval, stop.is_set)
            thread = threading.Thread(target=self._loop, args=(run, stop, done), name=self.name, daemon=True)
            self._thread = _ThreadLoop(thread, stop, done)
            thread.start()
            return done

    def _loop(self, run: Run, stop: threading.Event, done: concurrent.futures.Future[None]) -> None:
        try:
            while not stop.is_set():
                try:
                    self._sweep_once(run)
                except Exception:
                    self._failed(run)
                stop.wait(run.interval)
        finally:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled
                done.set_result(None)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the thread `start` started; whether it ended within `timeout` seconds
        (True if none runs). The async task is `astop`'s."""
        loop = self._thread
        if loop is None:
            return True
        loop.stop.set()
        loop.thread.join(timeout)
        return not loop.thread.is_alive()

    # --- async ----------------------------------------------------------------------------

    async def astart(self, interval: float) -> asyncio.Task[None]:
        """Sweep now and then every `interval` seconds in a task of the running event
        loop; the task ends when the loop does."""
        with self._lock:
            running = self._running(self._task, self._thread)
            if running is not None:
                return running.task
            stop = asyncio.Event()
            run = Run(interval, stop.is_set)
            task = asyncio.get_running_loop().create_task(self._aloop(run, stop), name=self.name)
            self._task = _TaskLoop(task, stop)
            return task

    async def _aloop(self, run: Run, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._asweep_once(run)
            except Exception:
                self._failed(run)
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), run.interval)

    async def astop(self, timeout: float | None = None) -> bool:
        """Stop the task `astart` started, cancelling it if its sweep takes over
        `timeout` seconds to end; returns once it has ended, whether it did so in
        time (True if none runs). The thread is `stop`'s."""
        loop = self._task
        if loop is None or loop.task.done():
            return True
        loop.stop.set()
        ended = False
        try:
            finished, _ = await asyncio.wait({loop.task}, timeout=timeout)
            ended = bool(finished)
        finally:  # also when the caller of astop is cancelled: the sweep must not outlive it
            if not ended:
                loop.task.cancel()
        if not ended:
            await asyncio.wait({loop.task})
        return ended
