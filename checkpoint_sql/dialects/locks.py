"""Locks that serialise schema migrations between processes, one kind per engine.

PostgreSQL and MySQL have lock functions for it; a Galera cluster needs a lock every
node honours, which its named locks are not; SQLite's write lock already is one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from checkpoint_sql.dialects import Family


@contextmanager
def migration_lock(family: Family, conn: Connection, name: str) -> Iterator[None]:
    """Hold a lock that serialises schema migrations of `name` across processes.

    PostgreSQL: a transaction-scoped advisory lock. MySQL: a named session lock, since
    its DDL commits implicitly; on a Galera cluster, whose nodes do not share named
    locks, a row in a replicated table (`_galera_migration_lock`). SQLite: the
    transaction's own write lock (the caller has begun it with BEGIN IMMEDIATE).
    """
    if family == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        yield
    elif family == "mysql" and is_galera(conn):
        with _galera_migration_lock(conn, name[:64]):
            yield
    elif family == "mysql":
        got = conn.execute(sa.text("SELECT GET_LOCK(:name, 120)"), {"name": name[:64]}).scalar()
        if got != 1:
            raise TimeoutError(f"could not take the migration lock {name!r} within 120 s")
        try:
            yield
        finally:
            if not conn.invalidated:  # else the session ended, and its locks with it
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name[:64]})
    else:
        yield


_GALERA_LOCKS = "checkpoint_sql_migration_locks"


_LOCK_WAIT, _LOCK_LEASE = 120.0, 60.0


_TAKEN = (1062, 1213)  # the row exists (ER_DUP_ENTRY), or another node inserted it first (certification)


@contextmanager
def _galera_migration_lock(conn: Connection, name: str) -> Iterator[None]:
    """A migration lock every node of a Galera cluster honours.

    `GET_LOCK` is local to one node, so two processes migrating through two nodes would
    both get it. Instead the lock is a row, committed on its own and so replicated:
    inserting it succeeds on one node only (a rival insert fails as a duplicate, or as a
    certification conflict when two nodes insert at once). The row names its holder,
    a session on a node (`_holder_is_gone`), so a lock whose node left the cluster or
    whose session ended is taken over at once; past its lease it is taken over anyway
    (a holder elsewhere whose client died). Once a node has applied the release, it has
    also applied the holder's earlier commits (Galera applies them in order), so the
    next holder reads the version the previous one left.
    """
    conn.exec_driver_sql("COMMIT")  # the caller's transaction: migrations' DDL commits implicitly anyway
    if not sa.inspect(conn).has_table(_GALERA_LOCKS):
        # Even IF NOT EXISTS is DDL, replicated in total order, and it aborts other nodes'
        # transactions on the table (a rival's lock insert or release): only when missing.
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {_GALERA_LOCKS} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
            "holder VARCHAR(100) NOT NULL, expires_at DOUBLE NOT NULL)"
        )
    node = str(conn.exec_driver_sql("SHOW STATUS LIKE 'wsrep_gcomm_uuid'").one()[1])
    holder = f"{node}/{conn.exec_driver_sql('SELECT CONNECTION_ID()').scalar()}"
    params = {"name": name, "holder": holder}
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        now = time.time()
        try:
            conn.execute(
                sa.text(f"INSERT INTO {_GALERA_LOCKS} (name, holder, expires_at) VALUES (:name, :holder, :until)"),
                {**params, "until": now + _LOCK_LEASE},
            )
            break
        except DBAPIError as exc:
            if getattr(exc.orig, "args", (None,))[0] not in _TAKEN:
                raise
        held = conn.execute(
            sa.text(f"SELECT holder, expires_at FROM {_GALERA_LOCKS} WHERE name = :name"), params
        ).first()
        if held is not None and (held[1] < now or _holder_is_gone(conn, str(held[0]), node)):
            conn.execute(
                sa.text(f"DELETE FROM {_GALERA_LOCKS} WHERE name = :name AND holder = :stale"),
                {**params, "stale": held[0]},
            )
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not take the migration lock {name!r} on the Galera cluster in {_LOCK_WAIT:g} s")
        time.sleep(0.1)
    try:
        yield
    finally:
        if not conn.invalidated:  # else the session is gone, and `_holder_is_gone` frees the lock
            conn.execute(sa.text(f"DELETE FROM {_GALERA_LOCKS} WHERE name = :name AND holder = :holder"), params)


def _holder_is_gone(conn: Connection, holder: str, node: str) -> bool:
    """Whether the session holding a Galera migration lock is gone: its node is no
    longer a member of the cluster, or it is a session of this node that has ended."""
    holder_node, _, session = holder.partition("/")
    members = {str(row[0]) for row in conn.exec_driver_sql("SELECT node_uuid FROM mysql.wsrep_cluster_members")}
    if holder_node not in members:
        return True
    if holder_node != node or not session.isdigit():
        return False
    alive = conn.execute(
        sa.text("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :id"), {"id": int(session)}
    ).scalar()
    return alive == 0


def is_galera(conn: sa.Connection) -> bool:
    """Whether `conn` is a session on a Galera node (wsrep replication on)."""
    row = conn.exec_driver_sql("SHOW VARIABLES LIKE 'wsrep_on'").first()
    return row is not None and str(row[1]).upper() == "ON"
