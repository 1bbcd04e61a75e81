"""The stores' TTL sweeper: a periodic sweep of expired rows on `core.periodic`'s
runner (its rules for starting, stopping and failing), started and stopped
explicitly like LangGraph's stores' TTL sweepers.

Replicas take turns through a lease (`checkpoint_sql.core.leases`): a sweep first takes
it and is skipped when another process holds it; a finished sweep keeps it for one
interval, so the fleet sweeps about once per interval, and a crashed holder's lease
simply expires."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from checkpoint_sql.core.calls import Call, Job, adrive, drive
from checkpoint_sql.core.leases import Lease
from checkpoint_sql.core.periodic import Periodic, Run

logger = logging.getLogger("checkpoint_sql.stores")


class Sweeper(Periodic):
    """Run the call `sweep` makes (it returns how many rows it removed) under `lease`,
    started and stopped as a `Periodic`."""

    def __init__(self, name: str, sweep: Callable[[], Call[Any, int]], lease: Lease) -> None:
        self._name = name
        self._sweep = sweep
        """Makes the call that sweeps once, at each turn (the store reads its clock then)."""
        self.lease = lease
        self.skipped = 0
        """Sweeps not run because another process held the lease."""
        super().__init__(f"{name}-ttl-sweeper", self._turn, self._aturn, log=logger)

    def _turn(self, run: Run) -> None:
        self._swept(drive(self.lease.db, self._tick(run.interval)))

    async def _aturn(self, run: Run) -> None:
        self._swept(await adrive(self.lease.db, self._tick(run.interval)))

    def _tick(self, interval: float) -> Job[int | None]:
        """One sweep, by whichever process holds the lease; a success keeps it for an
        interval, so the fleet sweeps about once per interval."""
        return self.lease.holding(self._sweep(), keep_for=interval)

    def _swept(self, removed: int | None) -> None:
        """Log a sweep's outcome: rows removed, or None when another process held the lease."""
        if removed is None:
            self.skipped += 1
            logger.debug("%s: TTL sweep skipped: another process holds lease %r", self._name, self.lease.name)
        else:
            logger.debug("%s: TTL sweep removed %d expired rows", self._name, removed)
