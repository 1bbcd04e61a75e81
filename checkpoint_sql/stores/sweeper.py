"""A periodic sweep of expired rows, in a daemon thread (sync applications) or an
asyncio task (async ones), started and stopped explicitly like LangGraph's stores'
TTL sweepers. A failed sweep is logged and retried at the next interval: a dropped
connection must not end the sweeper.

Replicas take turns through a lease (`checkpoint_sql.core.leases`): a tick first takes
it and skips the sweep when another process holds it; a finished sweep keeps it for
one interval, so the fleet sweeps about once per interval, and a crashed holder's
lease simply expires."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from checkpoint_sql.core.calls import Call, Job, adrive, drive
from checkpoint_sql.core.leases import Lease

logger = logging.getLogger("checkpoint_sql.stores")


class Sweeper:
    def __init__(self, name: str, sweep: Callable[[], Call[Any, int]], lease: Lease) -> None:
        self._name = name
        self._sweep = sweep
        """Makes the call that sweeps once, at each tick (the store reads its clock then)."""
        self.lease = lease
        self.skipped = 0
        """Ticks that found the lease held by another process."""
        self._thread: threading.Thread | None = None
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def start(self, interval: float) -> concurrent.futures.Future[None]:
        """Sweep every `interval` seconds in a daemon thread until `stop`; the future
        completes when the thread ends. Starting a running sweeper returns its future."""
        if self._thread is not None and self._thread.is_alive():
            return self._done
        self._stop.clear()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def loop() -> None:
            try:
                while not self._stop.wait(interval):
                    try:
                        removed = drive(self.lease.db, self._tick(interval))
                    except Exception:
                        logger.exception("%s: TTL sweep failed; retrying in %s s", self._name, interval)
                    else:
                        self._swept(removed)
            finally:
                done.set_result(None)

        self._done = done
        self._thread = threading.Thread(target=loop, name=f"{self._name}-ttl-sweeper", daemon=True)
        self._thread.start()
        return done

    def _tick(self, interval: float) -> Job[int | None]:
        """One sweep, by whichever process holds the lease; a success keeps it for an
        interval, so the fleet sweeps about once per interval."""
        return self.lease.holding(self._sweep(), keep_for=interval)

    def _swept(self, removed: int | None) -> None:
        """Log a tick's outcome: rows removed, or None when another process held the lease."""
        if removed is None:
            self.skipped += 1
            logger.debug("%s: TTL sweep skipped: another process holds lease %r", self._name, self.lease.name)
        else:
            logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the thread; whether it ended within `timeout` seconds (True if none ran)."""
        if self._thread is None:
            return True
        self._stop.set()
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if stopped:
            self._thread = None
        return stopped

    def astart(self, interval: float) -> asyncio.Task[None]:
        """Sweep every `interval` seconds in a task of the running event loop until `astop`."""
        if self._task is not None and not self._task.done():
            return self._task
        wake = self._wake = asyncio.Event()

        async def loop() -> None:
            while not wake.is_set():
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
                if wake.is_set():
                    return
                try:
                    removed = await adrive(self.lease.db, self._tick(interval))
                except Exception:
                    logger.exception("%s: TTL sweep failed; retrying in %s s", self._name, interval)
                else:
                    self._swept(removed)

        self._task = asyncio.get_running_loop().create_task(loop(), name=f"{self._name}-ttl-sweeper")
        return self._task

    async def astop(self, timeout: float | None = None) -> bool:
        """End the task once its sweep at hand (if any) is done, so no statement and
        no lease is abandoned half-way; cancel it if that takes over `timeout`
        seconds. Whether it ended in time (True if none ran)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return True
        if self._wake is not None:
            self._wake.set()
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            task.cancel()
        return task.done()
