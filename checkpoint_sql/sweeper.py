"""A background retention sweeper a service can start and stop, sync or async.

`RetentionSweeper` calls `SQLSaver.retain` with one policy at a fixed interval: on a
daemon thread (`start` / `stop`, or ``with``), or as a task of the running event
loop (`astart` / `astop`, or ``async with``). The first sweep runs at start. A
failed sweep is logged (logger ``checkpoint_sql.retention``) and kept in
`last_error`, and the next one runs on schedule: a database that is briefly down
must not end retention for the life of the process. Stopping takes effect between
two threads of a sweep, so it never waits for a whole sweep, and never abandons a
thread's transaction half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from checkpoint_sql.errors import ConfigurationError
from checkpoint_sql.retention import RetentionPolicy, RetentionReport

if TYPE_CHECKING:
    from checkpoint_sql.saver import SQLSaver

log = logging.getLogger("checkpoint_sql.retention")


class _Stopped(Exception):
    """Raised between two threads of a sweep once a stop was asked for."""


class RetentionSweeper:
    """Apply a retention policy to `saver` every `every` (a timedelta or seconds).

    `keep_last`, `older_than` and `threads` are those of `SQLSaver.retain`;
    `on_report` is called with each sweep's `RetentionReport`.
    """

    def __init__(
        self,
        saver: SQLSaver,
        *,
        every: timedelta | float,
        keep_last: int | None = None,
        older_than: timedelta | str | None = None,
        threads: Sequence[str] | None = None,
        on_report: Callable[[RetentionReport], None] | None = None,
    ) -> None:
        self.interval = every.total_seconds() if isinstance(every, timedelta) else float(every)
        if self.interval <= 0:
            raise ConfigurationError(f"RetentionSweeper: every must be positive, not {every!r}")
        self.saver = saver
        self.policy = RetentionPolicy.of(keep_last, older_than)
        self.threads = threads
        self.on_report = on_report
        self.sweeps = 0
        self.last_report: RetentionReport | None = None
        self.last_error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return (self._thread is not None and self._thread.is_alive()) or (
            self._task is not None and not self._task.done()
        )

    def _check(self, _done: int, _total: int) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _record(self, report: RetentionReport) -> None:
        self.sweeps += 1
        self.last_report, self.last_error = report, None
        if report.namespaces:
            log.info(
                "retention sweep deleted %d checkpoints in %d namespaces",
                report.checkpoints_deleted,
                len(report.namespaces),
            )
        if self.on_report is not None:
            self.on_report(report)

    def _failed(self, exc: Exception) -> None:
        self.last_error = exc
        log.warning("retention sweep failed: %s: %s", type(exc).__name__, exc)

    # --- sync ---------------------------------------------------------------------------

    def sweep(self) -> RetentionReport:
        """Run one sweep now, in the calling thread."""
        policy = self.policy
        report = self.saver.retain(
            keep_last=policy.keep_last, older_than=policy.older_than, threads=self.threads, progress=self._check
        )
        self._record(report)
        return report

    def start(self) -> None:
        """Start sweeping on a daemon thread."""
        if self.running:
            raise ConfigurationError("RetentionSweeper is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-sql-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop sweeping; returns once the thread being swept (if any) is done."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sweep()
            except _Stopped:
                return
            except Exception as exc:
                self._failed(exc)
            self._stopping.wait(self.interval)

    def __enter__(self) -> RetentionSweeper:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- async --------------------------------------------------------------------------

    async def asweep(self) -> RetentionReport:
        """Run one sweep now, on the saver's async engine."""
        policy = self.policy
        report = await self.saver.aretain(
            keep_last=policy.keep_last, older_than=policy.older_than, threads=self.threads, progress=self._check
        )
        self._record(report)
        return report

    async def astart(self) -> None:
        """Start sweeping as a task of the running event loop."""
        if self.running:
            raise ConfigurationError("RetentionSweeper is already running")
        self._stopping.clear()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._aloop(self._wake), name="checkpoint-sql-retention")

    async def astop(self) -> None:
        """Stop sweeping; returns once the thread being swept (if any) is done."""
        self._stopping.set()
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _aloop(self, wake: asyncio.Event) -> None:
        while not self._stopping.is_set():
            try:
                await self.asweep()
            except _Stopped:
                return
            except Exception as exc:
                self._failed(exc)
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), self.interval)

    async def __aenter__(self) -> RetentionSweeper:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()
