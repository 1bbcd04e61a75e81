"""The transient-error classifier, fed with errors that real servers and drivers raise.

Each case provokes the error for real (a killed session, a deadlock, a lock timeout, a
duplicate key, bad SQL, a value that does not fit) on each engine it exists on, both as
SQLAlchemy wraps it (what `SQLSaver` raises) and as the bare driver exception (what
LangGraph's own savers raise), and checks the verdict.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from checkpoint_sql import (
    EngineUnreachableError,
    InvalidConfigError,
    SchemaNotReadyError,
    SerializationError,
    SQLSaver,
    ThreadExistsError,
    is_transient,
)
from checkpoint_sql.core import engines
from tests.conftest import SERVER_URLS, fresh_database, require
from tests.helpers import config


def raised(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an error")


def both_forms(error: BaseException) -> list[BaseException]:
    """The error as SQLAlchemy raised it and the driver's own exception inside it."""
    return [error, error.orig] if isinstance(error, sa.exc.DBAPIError) and error.orig is not None else [error]


@contextmanager
def table_on(engine_name: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """A plain engine on a fresh database, with a table ``t (n primary key, s
    varchar(2))`` holding the row n=1."""
    require(engine_name)
    with fresh_database(engine_name, tmp_path) as url:
        engine = sa.create_engine(engines.driver_pair(engines.resolve(url))[0], poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, s VARCHAR(2))")
            conn.exec_driver_sql("INSERT INTO t VALUES (1, 'a')")
        yield engine
        engine.dispose()


@pytest.fixture
def sync_engine(engine_name: str, tmp_path: Path) -> Iterator[sa.Engine]:
    with table_on(engine_name, tmp_path) as engine:
        yield engine


@pytest.fixture(params=["postgresql", "mysql"])
def server_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """`sync_engine` for the two servers only: SQLite has no sessions to kill, no row
    locks to deadlock on and no column types to violate."""
    with table_on(request.param, tmp_path) as engine:
        yield request.param, engine


def run(engine: sa.Engine, *statements: str) -> Callable[[], None]:
    def action() -> None:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    return action


# --- never retried: the statement is wrong for the data --------------------------------


def test_a_duplicate_key_is_not_transient(sync_engine: sa.Engine) -> None:
    error = raised(run(sync_engine, "INSERT INTO t VALUES (1, 'b')"))
    assert isinstance(error, sa.exc.IntegrityError)
    assert not any(is_transient(e) for e in both_forms(error))


def test_bad_sql_is_not_transient(sync_engine: sa.Engine) -> None:
    error = raised(run(sync_engine, "SELEC n FROM t"))
    assert isinstance(error, (sa.exc.ProgrammingError, sa.exc.OperationalError))  # SQLite says OperationalError
    assert not any(is_transient(e) for e in both_forms(error))


def test_a_value_that_does_not_fit_is_not_transient(server_engine: tuple[str, sa.Engine]) -> None:
    engine_name, sync_engine = server_engine
    statement = "SELECT 1 / 0" if engine_name == "postgresql" else "INSERT INTO t VALUES (2, 'too long')"
    error = raised(run(sync_engine, statement))
    assert isinstance(error, sa.exc.DataError)
    assert not any(is_transient(e) for e in both_forms(error))


@pytest.mark.parametrize(
    "error",
    [
        InvalidConfigError("no thread_id"),
        SerializationError("not serializable"),
        ThreadExistsError("target exists"),
        SchemaNotReadyError("call setup()"),
    ],
)
def test_checkpoint_sql_own_errors_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


# --- retried: the connection went away ---------------------------------------------------


def test_a_session_killed_by_the_server_is_transient(server_engine: tuple[str, sa.Engine]) -> None:
    """PostgreSQL: `pg_terminate_backend` (57P01 admin shutdown). MariaDB: `KILL`, which
    the killed session sees as "Connection was killed" (1927)."""
    engine_name, sync_engine = server_engine
    kill_self = {"postgresql": "SELECT pg_terminate_backend(pg_backend_pid())", "mysql": "KILL CONNECTION_ID()"}
    error = raised(run(sync_engine, kill_self[engine_name]))
    assert all(is_transient(e) for e in both_forms(error))


def test_a_psycopg_connection_that_was_closed_is_transient() -> None:
    require("postgresql")
    conn = psycopg.connect(make_url(SERVER_URLS["postgresql"]).render_as_string(hide_password=False))
    conn.close()
    error = raised(lambda: conn.execute("SELECT 1"))
    assert str(error) == "the connection is closed"
    assert is_transient(error)


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_server_nobody_answers_on_is_transient_but_an_unknown_database_is_not(server: str) -> None:
    """Connection refused is what a restarting server looks like; a server that answers
    "no such database" will answer it again."""
    require(server)
    down = make_url(SERVER_URLS[server]).set(port=1)
    wrong = make_url(SERVER_URLS[server]).set(database="cpsql_no_such_database")
    for url, transient in ((down, True), (wrong, False)):
        with SQLSaver(url) as saver:
            error = raised(lambda s=saver: s.get_tuple(config("t")))
        assert isinstance(error, EngineUnreachableError)
        assert is_transient(error) is transient, str(error)


# --- retried: a lock or a deadlock chose us ----------------------------------------------


def test_sqlite_busy_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    error = raised(run(engine, "INSERT INTO t VALUES (1)"))
    holder.close()
    engine.dispose()
    assert "database is locked" in str(error)
    assert all(is_transient(e) for e in both_forms(error))


def test_a_deadlock_victim_is_transient(server_engine: tuple[str, sa.Engine]) -> None:
    """Two sessions lock two rows in opposite order; the server aborts one of them
    (PostgreSQL 40P01, MariaDB 1213)."""
    _, sync_engine = server_engine
    with sync_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2, 'b')")
    first, second = sync_engine.connect(), sync_engine.connect()
    first.exec_driver_sql("UPDATE t SET s = 'x' WHERE n = 1")
    second.exec_driver_sql("UPDATE t SET s = 'y' WHERE n = 2")
    errors: list[BaseException] = []

    def lock(conn: sa.Connection, n: int) -> None:
        try:
            conn.exec_driver_sql(f"UPDATE t SET s = 'z' WHERE n = {n}")
        except sa.exc.DBAPIError as exc:
            errors.append(exc)
        conn.rollback()

    crossing = threading.Thread(target=lock, args=(first, 2))
    crossing.start()
    lock(second, 1)
    crossing.join()
    first.close()
    second.close()
    assert len(errors) == 1, errors
    assert all(is_transient(e) for e in both_forms(errors[0])), errors[0]


def test_a_postgresql_serialization_failure_is_transient(tmp_path: Path) -> None:
    """A REPEATABLE READ transaction updates a row another one changed since its
    snapshot: 40001, to be retried from the start."""
    with table_on("postgresql", tmp_path) as sync_engine:
        serialization_failure(sync_engine)


def serialization_failure(sync_engine: sa.Engine) -> None:
    reader = sync_engine.connect().execution_options(isolation_level="REPEATABLE READ")
    reader.exec_driver_sql("SELECT s FROM t WHERE n = 1").all()
    run(sync_engine, "UPDATE t SET s = 'b' WHERE n = 1")()
    error = raised(lambda: reader.exec_driver_sql("UPDATE t SET s = 'c' WHERE n = 1"))
    reader.close()
    assert getattr(error, "orig", None) is not None and error.orig.sqlstate == "40001"  # type: ignore[attr-defined]
    assert all(is_transient(e) for e in both_forms(error))


def test_a_mariadb_lock_wait_timeout_is_transient(tmp_path: Path) -> None:
    with table_on("mysql", tmp_path) as sync_engine:
        lock_wait_timeout(sync_engine)


def lock_wait_timeout(sync_engine: sa.Engine) -> None:
    holder, waiter = sync_engine.connect(), sync_engine.connect()
    holder.exec_driver_sql("UPDATE t SET s = 'x' WHERE n = 1")
    waiter.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
    error = raised(lambda: waiter.exec_driver_sql("UPDATE t SET s = 'y' WHERE n = 1"))
    holder.close()
    waiter.close()
    assert error.orig.args[0] == 1205  # type: ignore[attr-defined]
    assert all(is_transient(e) for e in both_forms(error))


# --- errors raised while cleaning up after a lost connection ------------------------------


def test_an_error_raised_while_cleaning_up_after_a_lost_connection_is_judged_by_its_cause() -> None:
    """psycopg, in pipeline mode, reports a connection killed mid-batch as "cannot exit
    pipeline mode while busy", and the rollback that follows fails the same way: neither
    says "connection lost", but the error they were raised from does."""
    require("postgresql")
    with psycopg.connect(make_url(SERVER_URLS["postgresql"]).render_as_string(hide_password=False)) as conn:
        killed = raised(lambda: conn.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
    assert isinstance(killed, psycopg.errors.AdminShutdown)

    def rollback_after(cause: BaseException) -> BaseException:
        try:
            raise cause
        except BaseException:
            try:
                raise psycopg.OperationalError("sending query failed: cannot exit pipeline mode while busy")
            except BaseException as secondary:
                return secondary

    assert not is_transient(psycopg.OperationalError("sending query failed: cannot exit pipeline mode while busy"))
    assert is_transient(rollback_after(killed))
    duplicate = psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")
    assert not is_transient(rollback_after(duplicate)), "a statement error stays one, whatever it followed"
