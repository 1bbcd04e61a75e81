"""What a transaction is for, named once by the code that starts it.

A caller says what its operation does to the database; `Database` alone decides how
that runs on the engine at hand: bare or between BEGIN and COMMIT, which BEGIN
(`dialects.transactions.begin_sql`), and on SQLite whether it queues for the write lock and may
share a commit (`group_commit`). One value rather than a set of flags, so that no two
settings can contradict each other and no rule has to pick which one wins.
"""

from __future__ import annotations

from enum import Enum

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.capabilities import capabilities
from checkpoint_sql.dialects.transactions import Mode


class Intent(Enum):
    """The transaction an operation needs."""

    ONE_STATEMENT = "one statement"
    """The operation is a single statement (or reads that need no common view, such as
    a look at the catalogue), sent bare: the statement is its own transaction, without
    BEGIN and COMMIT round trips. Any read; a write only where
    `Capabilities.lone_writes_are_atomic` (on SQLite a lone write must be a `WRITE`, to
    wait for the lock in the queue)."""

    READ = "read"
    """Reads of one transaction, each statement seeing what was committed before it
    (READ COMMITTED on the servers)."""

    READ_SNAPSHOT = "read snapshot"
    """Reads of several statements that must agree with each other (an export, a
    history, a report): REPEATABLE READ on the servers; a plain read transaction on
    SQLite, which already is a snapshot there (see `Capabilities.reads_need_snapshot`)."""

    WRITE = "write"
    """Changes rows, in a transaction of its own; on SQLite it queues for the write
    lock (BEGIN IMMEDIATE) and commits alone, so a failure can only undo itself."""

    GROUPED_WRITE = "grouped write"
    """A write that, on SQLite, may share one commit (and its fsync) with concurrent
    writes of this process (`group_commit`); a `WRITE` elsewhere.
    For the hot path's puts; long or bulk writes would hold up the whole group."""

    SNAPSHOT_WRITE = "snapshot write"
    """Reads rows, then deletes or copies exactly those, in one consistent view
    (REPEATABLE READ on the servers), so that a put committing in between is either
    seen whole or not at all, never as blobs without their checkpoint."""

    @property
    def writes(self) -> bool:
        """Whether the transaction changes rows, hence takes SQLite's write lock."""
        return self in (Intent.WRITE, Intent.GROUPED_WRITE, Intent.SNAPSHOT_WRITE)

    def mode(self, family: Family) -> Mode | None:
        """The transaction `begin_sql` opens for this intent on `family`; None
        for a statement sent bare."""
        if self is Intent.ONE_STATEMENT:
            return None
        if self is Intent.READ_SNAPSHOT:
            return "snapshot" if capabilities(family).reads_need_snapshot else "read"
        if self is Intent.SNAPSHOT_WRITE:
            return "snapshot"
        return "write" if self.writes else "read"
