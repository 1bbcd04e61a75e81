"""A background retention sweeper a service can start and stop, sync or async.

`RetentionSweeper` calls `SQLSaver.retain` with one policy at a fixed interval: on a
daemon thread (`start` / `stop`, or ``with``), or as a task of the running event
loop (`astart` / `astop`, or ``async with``), by the rules of every sweeper
(`checkpoint_sql.core.periodic`): the first sweep runs at start, a second start
changes nothing, and a failed sweep is logged (logger
``checkpoint_sql.saver.retention``), kept in `last_error`, and the next one runs on
schedule: a database that is briefly down must not end retention for the life of the
process. Stopping takes effect between two threads of a sweep, so it never waits for
a whole sweep, and never abandons a thread's transaction half-way.

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
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from checkpoint_sql.core.leases import Lease
from checkpoint_sql.core.periodic import Periodic, Run
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


def _never() -> bool:
    """A sweep called directly (`sweep`, `asweep`) is never asked to stop."""
    return False


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
        self._runner = Periodic("checkpoint-sql-retention", self._turn, self._aturn, log=log)

    @property
    def running(self) -> bool:
        return self._runner.running

    def _skip(self, *, lost: bool = False) -> None:
        self.skipped += 1
        if lost:
            log.warning("retention sweep cut short: another process took over lease %r", self.lease.name)
        else:
            log.debug("retention sweep skipped: another process holds lease %r", self.lease.name)

    def _retain_arguments(self, stopping: Callable[[], bool]) -> dict[str, Any]:
        """What one sweep asks of `retain` / `aretain`: the policy, the threads, the
        hooks, and a progress callback that ends the sweep between two threads once
        a stop was asked for or the lease was lost."""

        def progress(_done: int, _total: int) -> None:
            if stopping():
                raise _Stopped
            if self._lost.is_set():
                raise _LeaseLost

        return {
            "keep_last": self.policy.keep_last,
            "older_than": self.policy.older_than,
            "threads": self.threads,
            "progress": progress,
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

    @contextlib.contextmanager
    def _kept_error(self) -> Iterator[None]:
        """Around a sweep of the runner's: a stop that cut it short is no failure; a
        failure is kept in `last_error`, then goes on to the runner, which logs it."""
        try:
            yield
        except _Stopped:
            pass
        except Exception as exc:
            self.last_error = exc
            raise

    # --- sync ---------------------------------------------------------------------------

    def sweep(self) -> RetentionReport | None:
        """Run one sweep now, in the calling thread; None (and nothing done) if
        another process holds the lease."""
        return self._sweep(_never)

    def _sweep(self, stopping: Callable[[], bool]) -> RetentionReport | None:
        if not self.lease.acquire():
            self._skip()
            return None
        self._lost.clear()
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), name="checkpoint-sql-lease", daemon=True)
        heartbeat.start()
        hold = 0.0
        try:
            report = self.saver.retain(**self._retain_arguments(stopping))
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

    def _turn(self, run: Run) -> None:
        with self._kept_error():
            self._sweep(run.stopping)

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.lease.ttl / 3):
            try:
                if not self.lease.renew():
                    self._lost.set()
                    return
            except Exception as exc:  # a failed renewal is retried; the lease outlives a blip
                log.warning("lease %r renewal failed: %s: %s", self.lease.name, type(exc).__name__, exc)

    def start(self) -> None:
        """Sweep now and then every `every` on a daemon thread; starting a running
        sweeper changes nothing."""
        self._runner.start(self.interval)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop sweeping once the thread being swept (if any) is done; whether the
        sweeper thread ended within `timeout` seconds (if not, it ends after that
        thread)."""
        return self._runner.stop(timeout)

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
        return await self._asweep(_never)

    async def _asweep(self, stopping: Callable[[], bool]) -> RetentionReport | None:
        if not await self.lease.aacquire():
            self._skip()
            return None
        self._lost.clear()
        heartbeat = asyncio.get_running_loop().create_task(self._aheartbeat(), name="checkpoint-sql-lease")
        hold = 0.0
        try:
            report = await self.saver.aretain(**self._retain_arguments(stopping))
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

    async def _aturn(self, run: Run) -> None:
        with self._kept_error():
            await self._asweep(run.stopping)

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
        """Sweep as `start` does, as a task of the running event loop."""
        await self._runner.astart(self.interval)

    async def astop(self, timeout: float | None = None) -> bool:
        """Stop sweeping once the thread being swept (if any) is done, cancelling the
        task if that takes over `timeout` seconds; returns once the task has ended,
        whether it ended in time."""
        return await self._runner.astop(timeout)

    async def __aenter__(self) -> RetentionSweeper:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()
