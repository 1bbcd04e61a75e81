"""The stores' TTL sweeper: a periodic sweep of expired rows on `core.periodic`'s
runner (its rules for starting, stopping and failing), started and stopped
explicitly like LangGraph's stores' TTL sweepers.

Replicas take turns through a lease (`checkpoint_sql.core.leases`): a sweep first takes
it and is skipped when another process holds it; a finished sweep keeps it for one
interval, so the fleet sweeps about once per interval, and a crashed holder's lease
simply expires."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from checkpoint_sql.core.leases import Lease
from checkpoint_sql.core.periodic import Periodic, Run

logger = logging.getLogger("checkpoint_sql.stores")


class Sweeper(Periodic):
    """Run `sweep` / `asweep` (each returns how many rows it removed) under `lease`,
    started and stopped as a `Periodic`."""

    def __init__(self, name: str, sweep: Callable[[], int], asweep: Callable[[], Awaitable[int]], lease: Lease) -> None:
        self._name = name
        self._sweep = sweep
        self._asweep = asweep
        self.lease = lease
        self.skipped = 0
        """Sweeps not run because another process held the lease."""
        super().__init__(f"{name}-ttl-sweeper", self._turn, self._aturn, log=logger)

    def _turn(self, run: Run) -> None:
        if not self.lease.acquire():
            self._skip()
            return
        hold = 0.0
        try:
            removed = self._sweep()
            hold = run.interval
        finally:
            self.lease.release(hold_for=hold)
        logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)

    async def _aturn(self, run: Run) -> None:
        if not await self.lease.aacquire():
            self._skip()
            return
        hold = 0.0
        try:
            removed = await self._asweep()
            hold = run.interval
        finally:
            await self.lease.arelease(hold_for=hold)
        logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)

    def _skip(self) -> None:
        self.skipped += 1
        logger.debug("%s: TTL sweep skipped: another process holds lease %r", self._name, self.lease.name)
