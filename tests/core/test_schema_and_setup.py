"""Schema, migrations and storage on each engine: long ids, living beside other
tables, concurrent setup, SQLite's WAL/durability/locking settings."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from checkpoint_sql import EngineOptions, SQLSaver
from checkpoint_sql.core import migrate
from tests.conftest import fresh_database, require
from tests.helpers import checkpoint, config, count, put_chain


def test_ten_thousand_character_thread_and_namespace_ids_work(saver: SQLSaver) -> None:
    thread = "thread-ü-" + "t" * 10_000
    ns = "parent:" + "n" * 10_000
    stored = saver.put(config(thread, ns=ns), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
    saver.put_writes(stored, [("a", 2)], "task")
    tup = saver.get_tuple(config(thread, ns=ns))
    assert tup.config["configurable"] == {
        "thread_id": thread,
        "checkpoint_ns": ns,
        "checkpoint_id": stored["configurable"]["checkpoint_id"],
    }
    assert tup.pending_writes == [("task", "a", 2)]
    assert [t.config["configurable"]["thread_id"] for t in saver.list({"configurable": {"thread_id": thread}})] == [
        thread
    ]
    saver.copy_thread(thread, thread + "-copy")
    saver.delete_thread(thread)
    assert saver.get_tuple(config(thread, ns=ns)) is None
    assert saver.get_tuple(config(thread + "-copy", ns=ns)).checkpoint["channel_values"] == {"a": 1}


@contextmanager
def official_saver(engine_name: str, db_url: str) -> Iterator[Any]:
    """LangGraph's own saver for the engine, on the same database."""
    if engine_name == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(make_url(db_url).database) as official:
            yield official
    elif engine_name == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(db_url) as official:
            yield official
    else:
        from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver

        with PyMySQLSaver.from_conn_string(db_url) as official:
            yield official


def test_our_tables_sit_beside_the_official_savers_tables(engine_name: str, db_url: str) -> None:
    with official_saver(engine_name, db_url) as official:
        official.setup()
        official.put(config("shared-thread"), checkpoint({"a": "theirs"}), {}, {"a": 1})
        with SQLSaver.from_conn_string(db_url) as ours:
            ours.setup()
            ours.put(config("shared-thread"), checkpoint({"a": "ours"}), {}, {"a": 1})
            assert ours.get_tuple(config("shared-thread")).checkpoint["channel_values"] == {"a": "ours"}
            names = set(sa.inspect(ours.db.sync_engine).get_table_names())
        assert official.get_tuple(config("shared-thread")).checkpoint["channel_values"] == {"a": "theirs"}
    assert {"cpsql_checkpoints", "cpsql_blobs", "cpsql_writes", "cpsql_alembic_version"} <= names
    assert "checkpoints" in names and len(names) > 4


def test_table_prefixes_keep_two_savers_apart_in_one_database(db_url: str) -> None:
    with SQLSaver.from_conn_string(db_url) as a, SQLSaver.from_conn_string(db_url, table_prefix="app2_") as b:
        a.setup()
        b.setup()
        put_chain(a, "t", 3)
        put_chain(b, "t", 1)
        assert (len(list(a.list(config("t")))), len(list(b.list(config("t"))))) == (3, 1)


def test_the_migrations_create_exactly_the_tables_the_code_uses(saver: SQLSaver) -> None:
    with saver.db.sync_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": saver.tables.migrations.version_table})
        assert compare_metadata(context, saver.tables.metadata) == []
        assert migrate.current(conn, saver.tables.migrations) == migrate.head(saver.tables.migrations)


def _setup_in_a_process(url: str, barrier: Any) -> None:
    barrier.wait()
    with SQLSaver.from_conn_string(url) as saver:
        saver.setup()
        saver.put(config(f"proc-{multiprocessing.current_process().pid}"), checkpoint(), {}, {})


def test_setup_is_idempotent_and_safe_from_eight_processes_at_once(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_setup_in_a_process, args=(db_url, barrier)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    with SQLSaver.from_conn_string(db_url) as saver:
        saver.setup()  # once more: nothing to do
        assert count(saver, "checkpoints") == 8
        with saver.db.sync_engine.connect() as conn:
            versions = (
                conn.execute(sa.text(f"SELECT version_num FROM {saver.tables.migrations.version_table}"))
                .scalars()
                .all()
            )
    assert versions == [migrate.head(saver.tables.migrations)]


def test_schema_option_places_the_tables_in_a_postgresql_schema(tmp_path: Any) -> None:
    require("postgresql")
    with fresh_database("postgresql", tmp_path) as db_url:
        _check_schema_option(db_url)


def _check_schema_option(db_url: str) -> None:
    engine = sa.create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS cpsql_extra")
    try:
        with SQLSaver(engine, schema="cpsql_extra") as saver:
            saver.setup()
            put_chain(saver, "t", 2)
            assert "cpsql_checkpoints" in sa.inspect(engine).get_table_names(schema="cpsql_extra")
            assert len(list(saver.list(config("t")))) == 2
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA cpsql_extra CASCADE")
        engine.dispose()


# --- SQLite specifics ------------------------------------------------------------------


def _pragmas(saver: SQLSaver) -> tuple[Any, ...]:
    with saver.db.sync_engine.connect() as conn:
        return tuple(
            conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "synchronous", "busy_timeout")
        )


def test_sqlite_uses_wal_full_durability_and_a_busy_timeout_by_default(tmp_path: Any) -> None:
    with SQLSaver.from_conn_string(f"sqlite:///{tmp_path}/a.db") as saver:
        saver.setup()
        assert _pragmas(saver) == ("wal", 2, 30_000)
    options = EngineOptions(sqlite_synchronous="NORMAL", busy_timeout=5)
    with SQLSaver.from_conn_string(f"sqlite:///{tmp_path}/a.db", engine_options=options) as saver:
        assert _pragmas(saver) == ("wal", 1, 5_000)


def test_sqlite_writers_wait_for_the_lock_instead_of_failing(tmp_path: Any) -> None:
    """BEGIN IMMEDIATE + busy_timeout: a writer blocked by another process's write
    transaction waits for it, and concurrent writers from many threads all succeed."""
    path = tmp_path / "locked.db"
    with SQLSaver.from_conn_string(f"sqlite:///{path}") as saver:
        saver.setup()
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        threading.Timer(1.0, holder.rollback).start()
        started = time.monotonic()
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert time.monotonic() - started >= 0.9, "the put must have waited for the lock"

        errors: list[BaseException] = []

        def write(n: int) -> None:
            try:
                put_chain(saver, f"thread-{n}", 20)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert count(saver, "checkpoints") == 1 + 8 * 20
        holder.close()


def test_an_in_memory_sqlite_database_is_shared_by_the_sync_and_async_sides() -> None:
    async def read(saver: SQLSaver) -> Any:
        return await saver.aget_tuple(config("t"))

    with SQLSaver.from_conn_string("sqlite://") as saver:
        saver.setup()
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert asyncio.run(read(saver)).checkpoint["channel_values"] == {"a": 1}


def test_one_saver_serves_several_event_loops_in_turn(db_url: str) -> None:
    """Scripts call asyncio.run more than once; pooled async connections die with
    their loop, so the saver must not hand them to the next one."""

    async def put_then_read(saver: SQLSaver, n: int) -> Any:
        await saver.aput(config(f"t{n}"), checkpoint({"n": n}), {}, {"n": 1})
        return (await saver.aget_tuple(config(f"t{n}"))).checkpoint["channel_values"]

    with SQLSaver.from_conn_string(db_url) as saver:
        saver.setup()
        assert [asyncio.run(put_then_read(saver, n)) for n in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
