"""Leases: at most one process at a time runs a job of a kind (a retention sweep, a
TTL sweep), across processes and hosts, on every engine.

A lease is a row of a table of ours (``<prefix>leases`` for the saver's jobs,
``<prefix>store_leases`` for the stores'), keyed by the job's name: who holds it and
until when. Taking it is one conditional UPDATE, so of two processes racing for it
exactly one wins, on SQLite, PostgreSQL, MySQL and Galera clusters alike (advisory
locks are not replicated by Galera, rows are). Expiry times are read on the database
server's clock, so hosts whose clocks disagree still agree on who holds it.

A holder renews its lease while it works and, when done, may keep it for a while
(`release(hold_for=...)`) so that the other replicas skip the job until it is due
again instead of repeating it. A holder that crashes simply stops renewing: once
its lease expires, the next process to ask takes it over.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from checkpoint_sql.core.calls import Call, Job
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.core.tables import LEASE_HOLDER_MAX as HOLDER_MAX
from checkpoint_sql.core.tables import LEASE_NAME_MAX as NAME_MAX
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.statements import insert_ignoring_duplicates, server_now_us
from checkpoint_sql.errors import ConfigurationError

T = TypeVar("T")


def default_holder() -> str:
    """Who a process is, in a lease row: host, process id, and a random part so two
    sweepers of one process are told apart too."""
    return f"{socket.gethostname()[:160]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One named lease in `table`, as seen by one holder.

    `ttl` (seconds) is how long the lease lasts unless renewed; pick it well above
    the time between two renewals. Every method is one short transaction, with an
    ``a``-prefixed async twin.
    """

    def __init__(self, db: Database, table: sa.Table, name: str, *, ttl: float, holder: str | None = None) -> None:
        if not 0 < ttl < 10**9:
            raise ConfigurationError(f"lease {name!r}: ttl must be a positive number of seconds, not {ttl!r}")
        if not name or len(name) > NAME_MAX or not name.isascii():
            raise ConfigurationError(f"lease name must be 1 to {NAME_MAX} ASCII characters, not {name!r}")
        self.db, self.table, self.name, self.ttl = db, table, name, ttl
        self.holder = holder or default_holder()
        if len(self.holder) > HOLDER_MAX:
            raise ConfigurationError(f"lease holder must be at most {HOLDER_MAX} characters, not {self.holder!r:.80}")

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, holder={self.holder!r}, ttl={self.ttl})"

    # --- the calls ------------------------------------------------------------------------

    def _acquire(self) -> Call[bool, bool]:
        return Call(_acquire, (self.table, self.db.family, self.name, self.holder, _us(self.ttl)), intent=Intent.WRITE)

    def _renew(self) -> Call[bool, bool]:
        return Call(_extend, (self.table, self.db.family, self.name, self.holder, _us(self.ttl)), intent=Intent.WRITE)

    def _release(self, hold_for: float) -> Call[bool, bool]:
        if hold_for < 0:
            raise ConfigurationError(f"lease {self.name!r}: hold_for must be >= 0, not {hold_for!r}")
        return Call(_extend, (self.table, self.db.family, self.name, self.holder, _us(hold_for)), intent=Intent.WRITE)

    # --- work under the lease -------------------------------------------------------------

    def holding(self, work: Call[Any, T], *, keep_for: float) -> Job[T | None]:
        """`work`, run only by the holder: take the lease (None, and `work` not run, if
        another process holds it), run `work`, then release the lease, kept `keep_for`
        seconds after a success so that the others skip their turn, freed at once after
        a failure so that another process may try. A job: `drive` or `adrive` it."""
        if not (yield self._acquire()):
            return None
        hold = 0.0
        try:
            done: T = yield work
            hold = keep_for
        finally:
            yield self._release(hold)
        return done

    # --- sync -----------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; whether we hold it now."""
        return self._acquire().on(self.db)

    def renew(self) -> bool:
        """Extend our lease by `ttl`; False if it is no longer ours (it expired and
        another process took it over)."""
        return self._renew().on(self.db)

    def release(self, hold_for: float = 0.0) -> bool:
        """Let the lease go: others may take it in `hold_for` seconds (0: now).
        False if it was no longer ours."""
        return self._release(hold_for).on(self.db)

    # --- async ----------------------------------------------------------------------------

    async def aacquire(self) -> bool:
        return await self._acquire().aon(self.db)

    async def arenew(self) -> bool:
        return await self._renew().aon(self.db)

    async def arelease(self, hold_for: float = 0.0) -> bool:
        return await self._release(hold_for).aon(self.db)


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _acquire(conn: Connection, table: sa.Table, family: Family, name: str, holder: str, ttl_us: int) -> bool:
    """Make sure the row exists (free: expired at 0), then take it where it is free,
    expired or ours: one conditional UPDATE, which only one of two racing processes
    can match, since the second waits on the first's row lock and then re-reads the
    row."""
    free = {"name": name, "holder": "", "acquired_us": 0, "expires_us": 0}
    conn.execute(insert_ignoring_duplicates(family, table).values(free))
    now = server_now_us(family)
    taken = conn.execute(
        sa.update(table)
        .where(table.c.name == name, sa.or_(table.c.expires_us <= now, table.c.holder == holder))
        # acquired_us first: MySQL evaluates assignments left to right, so it must
        # read the holder before the holder is overwritten.
        .ordered_values(
            (table.c.acquired_us, sa.case((table.c.holder == holder, table.c.acquired_us), else_=now)),
            (table.c.holder, holder),
            (table.c.expires_us, now + ttl_us),
        )
    )
    return bool(taken.rowcount == 1)


def _extend(conn: Connection, table: sa.Table, family: Family, name: str, holder: str, for_us: int) -> bool:
    """Set our lease to expire `for_us` from now (renewal, or release with a hold)."""
    now = server_now_us(family)
    changed = conn.execute(
        sa.update(table).where(table.c.name == name, table.c.holder == holder).values(expires_us=now + for_us)
    )
    return bool(changed.rowcount == 1)
