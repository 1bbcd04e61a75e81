"""A periodic sweep of expired rows, in a daemon thread (sync applications) or an
asyncio task (async ones), started and stopped explicitly like LangGraph's stores'
TTL sweepers. A failed sweep is logged and retried at the next interval: a dropped
connection must not end the sweeper."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable

logger = logging.getLogger("checkpoint_sql.stores")


class Sweeper:
    def __init__(self, name: str, sweep: Callable[[], int], asweep: Callable[[], Awaitable[int]]) -> None:
        self._name = name
        self._sweep = sweep
        self._asweep = asweep
        self._thread: threading.Thread | None = None
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None

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
                        removed = self._sweep()
                    except Exception:
                        logger.exception("%s: TTL sweep failed; retrying in %s s", self._name, interval)
                    else:
                        logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)
            finally:
                done.set_result(None)

        self._done = done
        self._thread = threading.Thread(target=loop, name=f"{self._name}-ttl-sweeper", daemon=True)
        self._thread.start()
        return done

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

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    removed = await self._asweep()
                except Exception:
                    logger.exception("%s: TTL sweep failed; retrying in %s s", self._name, interval)
                else:
                    logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)

        self._task = asyncio.get_running_loop().create_task(loop(), name=f"{self._name}-ttl-sweeper")
        return self._task

    async def astop(self, timeout: float | None = None) -> bool:
        """Cancel the task; whether it ended within `timeout` seconds (True if none ran)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return True
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)
        return task.done()
