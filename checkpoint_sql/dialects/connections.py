"""How this package's engines connect to each engine family: the drivers it supports,
their connect arguments and SQLite's per-connection settings.

`checkpoint_sql.core.engines` builds the engines (URLs, pools, pings, clusters) from
these; what differs between the drivers is only here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from checkpoint_sql.dialects import Family

# backend -> (sync driver, async driver). psycopg 3 serves both sides of PostgreSQL.
# MySQL/MariaDB: PyMySQL and asyncmy, both raising errors whose first argument is the
# server's error number. (aiomysql, PyMySQL's async sibling, fails to bind bytes with
# PyMySQL >= 1.2, which removed a function it imports.)
DRIVERS: dict[str, tuple[str, str]] = {
    "sqlite": ("pysqlite", "aiosqlite"),
    "postgresql": ("psycopg", "psycopg"),
    "mysql": ("pymysql", "asyncmy"),
    "mariadb": ("pymysql", "asyncmy"),
}

MYSQL_CLIENT_FLAGS = 2 | 1 << 16
"""CLIENT_FOUND_ROWS (what SQLAlchemy itself asks for, so that an UPDATE counts the
rows it matched) and CLIENT_MULTI_STATEMENTS, which lets a write transaction travel
as one query (`checkpoint_sql.core.links`). Protocol constants, the same for PyMySQL and asyncmy."""


def connect_args(family: Family, *, busy_timeout: float, prepare_threshold: int | None) -> dict[str, Any]:
    """The driver's connect arguments. SQLite: how long a writer waits for the lock, and
    connections usable from the async engine's worker threads. PostgreSQL: psycopg's
    prepare threshold. MySQL: READ COMMITTED sessions (fewer gap locks, fewer
    deadlocks) and multi-statement queries."""
    if family == "sqlite":
        return {"timeout": busy_timeout, "check_same_thread": False}
    if family == "postgresql":
        return {"prepare_threshold": prepare_threshold}
    return {
        "charset": "utf8mb4",
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "client_flag": MYSQL_CLIENT_FLAGS,
    }


def opens_binary_cursors(dialect: Dialect) -> bool:
    """Whether the hot path asks this driver for results in binary: psycopg's sync
    side. A checkpoint read is mostly bytea, which comes back as its bytes instead of
    hex text twice as long to send and decode (a page of `list`: 1.07 to 0.83 ms
    here). Only for the hot path's own statements, whose every column type (bytea,
    text, jsonb, integers) loads alike in both formats; catalogue queries may return
    types without a binary form (``aclitem``) or loader (``regtype``), so engines stay
    in text. The async side's cursors are SQLAlchemy's adapters, which take no format."""
    return dialect.driver == "psycopg" and not dialect.is_async


def sqlite_pragmas(engine: Engine, *, wal: bool, synchronous: str) -> None:
    """Per-connection SQLite settings. WAL lets readers run while one writer commits;
    `synchronous` is the durability knob (see `checkpoint_sql.core.engines.EngineOptions`)."""
    level = synchronous.upper()

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if wal:
            _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={level}")
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode unless it is already. The mode belongs to the file, and
    switching takes an exclusive lock that busy_timeout does not wait for: when several
    processes open a new file at once, the ones that lose the race are told "database
    is locked" while a winner switches it, and can leave it to the winner."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as exc:
        if "locked" not in str(exc):
            raise
