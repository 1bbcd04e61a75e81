"""The savers under test, opened on the run's databases.

For each engine a `Kit` holds, on the same database server:

* ``ours``: one `SQLSaver` (sync and async in one object), default options;
* ``official`` / ``official_async``: LangGraph's own savers for that engine, opened the
  way their documentation shows (`PostgresSaver`'s ``from_conn_string`` settings,
  `AsyncPostgresSaver` on an `AsyncConnectionPool`, ...);
* ``raw``: a bare driver connection on our database, for the physical floor;
* counting twins of ours, the official sync saver and the raw connection, with the
  `tracing` hooks attached (never timed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import asyncmy
import psycopg
import pymysql
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.mysql.asyncmy import AsyncMySaver
from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from benchmarks import tracing
from benchmarks.runner import Loop
from benchmarks.servers import Database, Databases
from checkpoint_sql import EngineOptions, SQLSaver
from checkpoint_sql.dialects.connections import MYSQL_CLIENT_FLAGS

OFFICIAL_NAMES = {
    "sqlite": ("SqliteSaver", "AsyncSqliteSaver"),
    "postgresql": ("PostgresSaver", "AsyncPostgresSaver"),
    "mysql": ("PyMySQLSaver", "AsyncMySaver"),
}
ENGINE_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB", "memory": "memory"}


@dataclass
class Kit:
    engine: str
    db: Database
    official_db: Database
    ours: SQLSaver
    official: BaseCheckpointSaver[Any]
    raw: Any
    ours_counting: SQLSaver
    official_counting: BaseCheckpointSaver[Any]
    raw_counting: Any
    official_async: BaseCheckpointSaver[Any]
    official_async_db: Database
    closers: list[Callable[[], None]] = field(default_factory=list)
    async_closers: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ENGINE_LABELS[self.engine]

    @property
    def official_name(self) -> str:
        return OFFICIAL_NAMES[self.engine][0]

    @property
    def official_async_name(self) -> str:
        return OFFICIAL_NAMES[self.engine][1]

    def close(self, loop: Loop) -> None:
        self.closing(loop, self.closers, self.async_closers, self.engine)

    @staticmethod
    def closing(
        loop: Loop, closers: list[Callable[[], None]], async_closers: list[Callable[[], Any]], engine: str
    ) -> None:
        for aclose in reversed(async_closers):
            try:
                loop.run(aclose())
            except Exception as exc:  # closing must not hide the run's own error
                print(f"warning: closing an async {engine} saver failed: {exc}")
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:
                print(f"warning: closing a {engine} saver failed: {exc}")


# --- raw connections ---------------------------------------------------------------------------


def raw_sqlite(db: Database, *, factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """sqlite3 as our engines configure it: autocommit (we send BEGIN ourselves), WAL, FULL."""
    assert db.path is not None
    conn = sqlite3.connect(db.path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=factory)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def raw_psycopg(db: Database) -> psycopg.Connection[Any]:
    """psycopg as our engines configure it: autocommit, prepare threshold 5."""
    return psycopg.connect(db.libpq, autocommit=True, prepare_threshold=5)


def raw_pymysql(db: Database) -> pymysql.Connection[Any]:
    """PyMySQL with the session settings of our MySQL engines (`checkpoint_sql.core.engines`)."""
    return _pymysql(db, session=True)


def _pymysql(db: Database, *, session: bool = False) -> pymysql.Connection[Any]:
    a = db.mysql_address()
    if session:
        return pymysql.connect(
            host=a.host,
            port=a.port,
            user=a.user,
            password=a.password,
            database=a.database,
            autocommit=True,
            charset="utf8mb4",
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            client_flag=MYSQL_CLIENT_FLAGS,  # several statements per query, as our write transactions send
        )
    return pymysql.connect(
        host=a.host, port=a.port, user=a.user, password=a.password, database=a.database, autocommit=True
    )


def raw_connection(db: Database) -> Any:
    if db.engine == "sqlite":
        return raw_sqlite(db)
    if db.engine == "postgresql":
        return raw_psycopg(db)
    return raw_pymysql(db)


# --- official savers ----------------------------------------------------------------------------


def official_sync(db: Database, *, counting: bool = False) -> tuple[BaseCheckpointSaver[Any], Callable[[], None]]:
    """LangGraph's sync saver for `db`, with its connection settings from ``from_conn_string``."""
    saver: BaseCheckpointSaver[Any]
    if db.engine == "sqlite":
        assert db.path is not None
        sconn = sqlite3.connect(db.path, check_same_thread=False)
        if counting:
            tracing.attach_sqlite(sconn)
        saver = SqliteSaver(sconn)
        saver.setup()
        return saver, sconn.close
    if db.engine == "postgresql":
        pconn = psycopg.connect(db.libpq, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        if counting:
            tracing.attach_psycopg(pconn)
        saver = PostgresSaver(pconn)
        saver.setup()
        return saver, pconn.close
    mconn = _pymysql(db)
    if counting:
        tracing.attach_pymysql(mconn)
    saver = PyMySQLSaver(mconn)
    saver.setup()
    return saver, mconn.close


async def official_async(db: Database, pool_size: int) -> tuple[BaseCheckpointSaver[Any], Callable[[], Any]]:
    """LangGraph's async saver for `db`; PostgreSQL's on a pool of `pool_size` connections."""
    saver: BaseCheckpointSaver[Any]
    if db.engine == "sqlite":
        assert db.path is not None
        aconn = await aiosqlite.connect(db.path)
        saver = AsyncSqliteSaver(aconn)
        await saver.setup()
        return saver, aconn.close
    if db.engine == "postgresql":
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            db.libpq,
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        return saver, pool.close
    a = db.mysql_address()
    mconn = await asyncmy.connect(
        host=a.host, port=a.port, user=a.user, password=a.password, db=a.database, autocommit=True
    )
    saver = AsyncMySaver(conn=mconn)
    await saver.setup()

    async def close() -> None:
        mconn.close()

    return saver, close


# --- ours ---------------------------------------------------------------------------------------


def ours(db: Database, *, counting: bool = False, options: EngineOptions | None = None) -> SQLSaver:
    saver = SQLSaver(db.url, engine_options=options)
    if counting:
        tracing.attach_engine(saver.db.sync_engine)
    saver.setup()
    return saver


def open_kit(engine: str, databases: Databases, loop: Loop, *, pool_size: int, label: str = "main") -> Kit:
    """Every contender of `engine` on fresh databases (official savers get their own
    database on SQLite, where each is a file; on servers they share ours, under their
    own table names)."""
    db = databases.create(engine, f"{label}_ours" if engine == "sqlite" else label)
    official_db = databases.create(engine, f"{label}_official") if engine == "sqlite" else db
    official_async_db = databases.create(engine, f"{label}_official_async") if engine == "sqlite" else db
    closers: list[Callable[[], None]] = []
    async_closers: list[Callable[[], Any]] = []

    def closing(saver: SQLSaver) -> SQLSaver:
        closers.append(saver.close)
        async_closers.append(saver.aclose)
        return saver

    try:
        main = closing(ours(db))
        official, close = official_sync(official_db)
        closers.append(close)
        raw = raw_connection(db)
        closers.append(raw.close)
        ours_counting = closing(ours(db, counting=True))
        official_counting, close = official_sync(official_db, counting=True)
        closers.append(close)
        raw_counting = _counting_raw(db)
        closers.append(raw_counting.close)
        official_async_saver, aclose = loop.run(official_async(official_async_db, pool_size))
        async_closers.append(aclose)
    except BaseException:
        Kit.closing(loop, closers, async_closers, engine)
        raise
    return Kit(
        engine=engine,
        db=db,
        official_db=official_db,
        ours=main,
        official=official,
        raw=raw,
        ours_counting=ours_counting,
        official_counting=official_counting,
        raw_counting=raw_counting,
        official_async=official_async_saver,
        official_async_db=official_async_db,
        closers=closers,
        async_closers=async_closers,
    )


def _counting_raw(db: Database) -> Any:
    if db.engine == "sqlite":
        conn = raw_sqlite(db)
        tracing.attach_sqlite(conn)
        return conn
    if db.engine == "postgresql":
        pconn = raw_psycopg(db)
        tracing.attach_psycopg(pconn)
        return pconn
    mconn = raw_pymysql(db)
    tracing.attach_pymysql(mconn)
    return mconn
