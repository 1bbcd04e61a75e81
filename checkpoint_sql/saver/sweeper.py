"""A background retention sweeper a service can start and stop, sync or async.

`RetentionSweeper` calls `SQLSaver.retain` with one policy at a fixed interval: on a
daemon thread (`start` / `stop`, or ``with``), or as a task of the running event
loop (`astart` / `astop`, or ``async with``). The first sweep runs at start. A
failed sweep is logged (logger ``checkpoint_sql.saver.retention``) and kept in
`last_error`, and the next one runs on schedule: a database that is briefly down
must not end retention for the life of the process. Stopping takes effect between
two threads of a sweep, so it never waits for a whole sweep, and never abandons a
thread's transaction half-way.

Replicas cooperate through a lease (`checkpoint_sql.core.leases`, the ``retention`` row of
``<prefix>leases``): a sweep first takes the lease, and a sweeper that finds it held
by another process skips that sweep (`skipped`) instead of queueing behind it.
While sweeping, a heartbeat renews the lease every third of `lease_ttl`; a holder
that crashes stops renewing and its lease expires, so another replica takes over.
A finished sweep keeps the lease for `every`, so the fleet sweeps about once per
interval, not once per replica. A sweeper that loses its lease mid-sweep (it was
frozen past `lease_ttl`) stops after the thread at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from checkpoint_sql.core.leases import Lease
from checkpoint_sql.errors import ConfigurationError
from checkpoint_sql.saver.retention import Override, RetentionPolicy, RetentionReport, Veto

if TYPE_CHECKING:
    from checkpoint_sql.saver.sql_saver import SQLSaver

log = logging.getLogger("checkpoint_sql.saver.retention")


LEASE_NAME = "retention"
DEFAULT_LEASE_TTL = 60.0
"""Seconds a sweep's lease lasts without renewal: how long a crashed holder holds
up the others."""


class _Stopped(Exception):
    """Raised between two threads of a sweep once a stop was asked for."""


class _LeaseLost(Exception):
    """Raised between two threads of a sweep once another process took the lease."""


class RetentionSweeper:
    """Apply a retention policy to `saver` every `every` (a timedelta or seconds).

    `keep_last`, `older_than`, `threads`, `override` and `veto` are those of
    `SQLSaver.retain`; `on_report` is called with each sweep's `RetentionReport`.
    `lease_ttl` (seconds) bounds how long a crashed sweeper keeps the others waiting;
    `holder` names this sweeper in the lease row (default: host, pid, random).
    Sweepers take turns per `lease_name`: give sweepers with different policies
    (a nightly deep trim beside the hourly one) names of their own.
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
        override: Override | None = None,
        veto: Veto | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        holder: str | None = None,
        lease_name: str = LEASE_NAME,
    ) -> None:
        self.interval = every.total_seconds() if isinstance(every, timedelta) else float(every)
        if self.interval <= 0:
            raise ConfigurationError(f"RetentionSweeper: every must be positive, not {every!r}")
        self.saver = saver
        self.policy = RetentionPolicy.of(keep_last, older_than)
        self.threads = threads
        self.on_report = on_report
        self.override, self.veto = override, veto
        self.lease = Lease(saver.db, saver.tables.leases, lease_name, ttl=lease_ttl, holder=holder)
        self.sweeps = 0
        self.skipped = 0
        """Sweeps not run because another process held the lease."""
        self._lost = threading.Event()
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
        if self._lost.is_set():
            raise _LeaseLost

    def _skip(self, *, lost: bool = False) -> None:
        self.skipped += 1
        if lost:
            log.warning("retention sweep cut short: another process took over lease %r", self.lease.name)
        else:
            log.debug("retention sweep skipped: another process holds lease %r", self.lease.name)

    def _retain_arguments(self) -> dict[str, Any]:
        """What one sweep asks of `retain` / `aretain`: the policy, the threads, the
        hooks, and `_check` as progress, which ends the sweep once the lease is lost."""
        return {
            "keep_last": self.policy.keep_last,
            "older_than": self.policy.older_than,
            "threads": self.threads,
            "progress": self._check,
            "override": self.override,
            "veto": self.veto,
        }

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

    def sweep(self) -> RetentionReport | None:
        """Run one sweep now, in the calling thread; None (and nothing done) if
        another process holds the lease."""
        if not self.lease.acquire():
            self._skip()
            return None
        self._lost.clear()
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), name="checkpoint-sql-lease", daemon=True)
        heartbeat.start()
        hold = 0.0
        try:
            report = self.saver.retain(**self._retain_arguments())
            hold = self.interval
        except _LeaseLost:
            self._skip(lost=True)
            return None
        finally:
            done.set()
            heartbeat.join()
            self.lease.release(hold_for=hold)
        self._record(report)
        return report

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.lease.ttl / 3):
            try:
                if not self.lease.renew():
                    self._lost.set()
                    return
            except Exception as exc:  # a failed renewal is retried; the lease outlives a blip
                log.warning("lease %r renewal failed: %s: %s", self.lease.name, type(exc).__name__, exc)

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

    async def asweep(self) -> RetentionReport | None:
        """Run one sweep now, on the saver's async engine; None (and nothing done)
        if another process holds the lease."""
        if not await self.lease.aacquire():
            self._skip()
            return None
        self._lost.clear()
        heartbeat = asyncio.get_running_loop().create_task(self._aheartbeat(), name="checkpoint-sql-lease")
        hold = 0.0
        try:
            report = await self.saver.aretain(**self._retain_arguments())
            hold = self.interval
        except _LeaseLost:
            self._skip(lost=True)
            return None
        finally:
            heartbeat.cancel()
            await asyncio.wait({heartbeat})
            await self.lease.arelease(hold_for=hold)
        self._record(report)
        return report

    async def _aheartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.ttl / 3)
            try:
                if not await self.lease.arenew():
                    self._lost.set()
                    return
            except Exception as exc:  # a failed renewal is retried; the lease outlives a blip
                log.warning("lease %r renewal failed: %s: %s", self.lease.name, type(exc).__name__, exc)

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
