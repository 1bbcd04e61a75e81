"""What each engine family can do, or needs, that shapes the package's own plans.

One frozen object per family, looked up once, so that a caller reads
``capabilities(family).chains_writes`` and every such fact, with the measurement or
failure behind it, is written down here beside the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkpoint_sql.dialects import MYSQL_DIALECTS, Family


def family_of(dialect_name: str) -> Family:
    """The engine family of a SQLAlchemy dialect name; MariaDB counts as MySQL."""
    if dialect_name == "sqlite":
        return "sqlite"
    if dialect_name == "postgresql":
        return "postgresql"
    if dialect_name in MYSQL_DIALECTS:
        return "mysql"
    raise ValueError(f"unsupported SQLAlchemy dialect {dialect_name!r}")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The facts about one engine family that change how a statement or a transaction
    is planned (how its SQL is spelled is the other modules of `checkpoint_sql.dialects`)."""

    page_holds_keys_only: bool
    """Whether a read's page of checkpoints (a CTE its parts refer to) should hold
    primary keys only, each part joining back to the rows.

    MariaDB materializes a CTE once per reference, and one holding BLOB or TEXT
    columns goes to an on-disk temporary table: three per read, 1.5 ms, against
    0.5 ms keyed. Elsewhere the page holds whole rows: SQLite, given the keys, plans
    the join back as a scan of the checkpoints table probing the page (2 ms per read
    at 40k checkpoints), and PostgreSQL needs neither.
    """

    lone_writes_are_atomic: bool
    """Whether one write statement may run without an explicit transaction.

    Not on SQLite: a bare statement reads before it takes the write lock, and in WAL
    mode another writer committing in between fails it (SQLITE_BUSY_SNAPSHOT) without
    waiting; BEGIN IMMEDIATE takes the lock first.
    """

    chains_writes: bool
    """Whether several INSERTs can be chained into one statement (PostgreSQL's
    data-modifying CTEs), making a put one round trip and one implicit transaction."""

    reads_need_snapshot: bool
    """Whether a read of several statements must run in ``snapshot`` mode to see one
    consistent state (an export, a history): the servers otherwise run READ COMMITTED;
    a SQLite read transaction already is a snapshot, and its snapshot mode would take
    the write lock, stalling every writer for the length of the read."""


_CAPABILITIES: dict[Family, Capabilities] = {
    "sqlite": Capabilities(
        page_holds_keys_only=False, lone_writes_are_atomic=False, chains_writes=False, reads_need_snapshot=False
    ),
    "postgresql": Capabilities(
        page_holds_keys_only=False, lone_writes_are_atomic=True, chains_writes=True, reads_need_snapshot=True
    ),
    "mysql": Capabilities(
        page_holds_keys_only=True, lone_writes_are_atomic=True, chains_writes=False, reads_need_snapshot=True
    ),
}


def capabilities(family: Family) -> Capabilities:
    """The capabilities of `family`."""
    return _CAPABILITIES[family]
