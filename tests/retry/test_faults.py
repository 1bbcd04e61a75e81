"""Real faults under real graph runs: with a `RetryingSaver`, every run completes and ends
in the very state it reaches on LangGraph's `InMemorySaver`, which never fails.

The faults come from outside the saver, as in production: another connection kills the
saver's server connections, the PostgreSQL server stops and starts again, another
process holds SQLite's write lock, MariaDB picks the saver's transaction as a deadlock
victim or kills its connection. Each test prints what it measured (runs, faults
injected, retries, runs identical to the reference).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy.engine import make_url

from checkpoint_sql import (
    EngineOptions,
    EngineUnreachableError,
    RetryExhaustedError,
    RetryingSaver,
    RetryPolicy,
    SQLSaver,
)
from tests.conftest import REQUIRED, admin_url, fresh_database, require
from tests.faults import ConnectionKiller, retries_logged, sqlite_write_lock, with_application_name
from tests.graphs import AgentState, Flaky, agent_graph, question
from tests.helpers import checkpoint, config
from tests.private_postgres import PrivatePostgres, server_binaries
from tests.saver.test_graphs import shape

QUESTION = "alpha beta gamma delta"
"""Four tool calls: nine super-steps, about twenty transactions per run."""

APIS = pytest.mark.parametrize("api", ["sync", "async"])

Outcome = tuple[dict[str, Any], list[tuple[Any, ...]]]


@pytest.fixture(autouse=True)
def _capture_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="checkpoint_sql.retry.policy")


@cache
def reference() -> Outcome:
    """The final values and the history of the run on `InMemorySaver`."""
    graph = agent_graph().compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "reference"}}
    graph.invoke(question(QUESTION), thread)
    return graph.get_state(thread).values, shape(list(graph.get_state_history(thread)))


async def run_to_end(api: str, graph: Any, thread_id: str, value: Any = None, **options: Any) -> Outcome:
    """Run (or, with `value` None, resume) a thread, then read back its state and history."""
    thread = {"configurable": {"thread_id": thread_id}}
    if api == "sync":
        graph.invoke(value, thread, **options)
        return graph.get_state(thread).values, shape(list(graph.get_state_history(thread)))
    await graph.ainvoke(value, thread, **options)
    return (await graph.aget_state(thread)).values, shape([s async for s in graph.aget_state_history(thread)])


@asynccontextmanager
async def set_up(saver: BaseCheckpointSaver[Any], api: str) -> AsyncIterator[Any]:
    async with saver:  # type: ignore[attr-defined]
        if api == "sync":
            saver.setup()  # type: ignore[attr-defined]
        else:
            await saver.asetup()  # type: ignore[attr-defined]
        yield saver


def report(test: str, **figures: object) -> None:
    print(f"\n[retry-faults] {test}: " + ", ".join(f"{k.replace('_', ' ')}={v}" for k, v in figures.items()))


# --- connections killed while graphs run -------------------------------------------------

RUNS = 10
KILL_EVERY = {"postgresql": (0.02, 0.06), "mysql": (0.03, 0.1)}
"""Seconds between two rounds of kills. Wider on MariaDB, where PyMySQL takes ~30 ms
to open the connection each kill costs, so that runs still make progress quickly."""


@APIS
@pytest.mark.parametrize("server", ["postgresql", "mysql"])
async def test_runs_complete_unchanged_while_another_connection_keeps_killing_the_savers_connections(
    server: str, api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every few tens of milliseconds another session ends all of the saver's server connections
    (`pg_terminate_backend` / `KILL`), idle or in the middle of a transaction. A killed
    connection fails the read or write that runs on it next (unless the pool's ping
    catches it first), and that operation is retried as a whole. Should no kill have hit
    an operation in the first ten runs (the kills are random), more runs follow, so
    that the test always proves something."""
    require(server)
    with fresh_database(server, tmp_path) as url:
        if server == "postgresql":
            target = f"cpsql_retry_{uuid.uuid4().hex[:8]}"
            url = with_application_name(url, target)
        else:
            target = str(make_url(url).database)
        policy = RetryPolicy(max_retries=8, base_delay=0.01, max_delay=0.2, jitter=0.01)
        async with set_up(RetryingSaver.from_conn_string(url, policy=policy), api) as saver:
            graph = agent_graph().compile(checkpointer=saver)
            outcomes: list[Outcome] = []
            with ConnectionKiller(server, target, interval=KILL_EVERY[server]) as killer:
                while len(outcomes) < RUNS or (not retries_logged(caplog) and len(outcomes) < 3 * RUNS):
                    outcomes.append(await run_to_end(api, graph, f"run-{len(outcomes)}", question(QUESTION)))

    identical = sum(outcome == reference() for outcome in outcomes)
    retries = retries_logged(caplog)
    report(
        f"killed connections {server}/{api}",
        runs=len(outcomes),
        connections_killed=killer.killed,
        retries=len(retries),
        identical=f"{identical}/{len(outcomes)}",
    )
    assert identical == len(outcomes)
    assert retries, "no operation was hit by a kill: the test proved nothing"


# --- PostgreSQL stopped and started again --------------------------------------------------


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own, since these tests stop it: the shared
    server on 5432 is in use by other test runs."""
    server: PrivatePostgres | None = None
    try:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        server = PrivatePostgres(binaries)
        server.start()
    except Exception as exc:
        if server is not None:
            server.remove()
        reason = f"cannot run a private PostgreSQL server: {exc}"
        if "postgresql" in REQUIRED:
            pytest.fail(f"{reason} (CHECKPOINT_SQL_REQUIRE_ENGINES requires postgresql)")
        pytest.skip(reason)
    yield server
    server.remove()


@contextmanager
def private_schema(server: PrivatePostgres) -> Iterator[str]:
    """A URL to a fresh schema on `server`, dropped afterwards (with the server up)."""
    name = f"cpsql_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        make_url(server.url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield make_url(server.url).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


class StopsTheServer:
    """The graph's tool node. On its second call it stops the server (sessions are
    terminated, new connections refused) and, unless `back_after` is None, starts it
    again that many seconds later."""

    def __init__(self, server: PrivatePostgres, *, back_after: float | None) -> None:
        self.server = server
        self.back_after = back_after
        self.calls = 0
        self.restart: threading.Timer | None = None

    def __call__(self, state: AgentState) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2:
            self.server.stop()
            if self.back_after is not None:
                self.restart = threading.Timer(self.back_after, self.server.start)
                self.restart.start()
        return Flaky()(state)


@APIS
async def test_a_postgresql_restart_in_the_middle_of_a_run_is_waited_out(
    private_postgres: PrivatePostgres, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is down for two seconds after the run's second tool call; the budget
    (six retries, 0.25 s doubling up to 2 s: 7.75 s of waiting) covers it."""
    tools = StopsTheServer(private_postgres, back_after=2.0)
    policy = RetryPolicy(max_retries=6, base_delay=0.25, max_delay=2.0, jitter=0)
    with private_schema(private_postgres) as url:
        async with set_up(RetryingSaver.from_conn_string(url, policy=policy), api) as saver:
            graph = agent_graph(tools).compile(checkpointer=saver)
            outcome = await run_to_end(api, graph, "restarted", question(QUESTION))
        assert tools.restart is not None
        tools.restart.join()

    retries = retries_logged(caplog)
    report(
        f"postgresql restart/{api}",
        runs=1,
        restarts=1,
        retries=len(retries),
        waited_s=round(sum(r.delay for r in retries), 2),
        identical=f"{int(outcome == reference())}/1",
    )
    assert outcome == reference()
    assert {r.error_class for r in retries} <= {"EngineUnreachableError", "OperationalError"}
    assert any(r.error_class == "EngineUnreachableError" for r in retries), "the server was never found down"


@APIS
async def test_an_outage_longer_than_the_budget_fails_clearly_and_the_run_resumes_once_the_server_is_back(
    private_postgres: PrivatePostgres, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server gone for good, the run fails after the budget (3 attempts) with
    `RetryExhaustedError` chaining the connection failure, not with a driver error deep
    in LangGraph. Nothing committed is lost: once the server is back the same thread
    resumes from its last checkpoint and ends exactly like the reference run.

    The run uses ``durability="sync"``, so that the steps before the outage are
    committed before the next one starts; with LangGraph's default ("async") the
    background writes may lag several steps behind, and those are lost with the run.
    """
    tools = StopsTheServer(private_postgres, back_after=None)
    policy = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.1, jitter=0)
    with ExitStack() as cleanup:
        url = cleanup.enter_context(private_schema(private_postgres))
        cleanup.callback(lambda: None if private_postgres.is_running() else private_postgres.start())
        async with set_up(RetryingSaver.from_conn_string(url, policy=policy), api) as saver:
            graph = agent_graph(tools).compile(checkpointer=saver)
            with pytest.raises(RetryExhaustedError) as failure:
                await run_to_end(api, graph, "outage", question(QUESTION), durability="sync")
            private_postgres.start()
            outcome = await run_to_end(api, graph, "outage", durability="sync")

    error = failure.value
    report(
        f"postgresql outage beyond budget/{api}",
        runs=1,
        outages=1,
        retries=len(retries_logged(caplog)),
        error=str(error)[:90],
        identical_after_resume=f"{int(outcome == reference())}/1",
    )
    assert error.attempts == 3 and "failed after 3 attempts" in str(error)
    assert isinstance(error.__cause__, EngineUnreachableError)
    assert outcome == reference()


# --- SQLite: another process holds the write lock -------------------------------------------


class TakesTheWriteLock:
    """The graph's tool node; on its second call another process takes the SQLite
    write lock and keeps it for `seconds`, far longer than the saver's busy timeout."""

    def __init__(self, path: Path, seconds: float, cleanup: ExitStack) -> None:
        self.path, self.seconds, self.cleanup = path, seconds, cleanup
        self.calls = 0

    def __call__(self, state: AgentState) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2:
            self.cleanup.enter_context(sqlite_write_lock(str(self.path), self.seconds))
        return Flaky()(state)


BUSY = EngineOptions(busy_timeout=0.05)


@APIS
async def test_a_sqlite_write_lock_held_by_another_process_is_waited_out(
    api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The lock is held for 1 s; the saver's busy timeout is 50 ms, so without retries
    "database is locked" would fail the run (next test). The budget (0.1 s doubling up
    to 1 s, six retries) waits it out."""
    path = tmp_path / "locked.db"
    policy = RetryPolicy(max_retries=6, base_delay=0.1, max_delay=1.0, jitter=0)
    with ExitStack() as cleanup:
        saver = RetryingSaver.from_conn_string(f"sqlite:///{path}", policy=policy, engine_options=BUSY)
        async with set_up(saver, api):
            graph = agent_graph(TakesTheWriteLock(path, 1.0, cleanup)).compile(checkpointer=saver)
            outcome = await run_to_end(api, graph, "locked", question(QUESTION))

    retries = retries_logged(caplog)
    report(
        f"sqlite write lock/{api}",
        runs=1,
        lock_holds=1,
        retries=len(retries),
        identical=f"{int(outcome == reference())}/1",
    )
    assert outcome == reference()
    assert retries and all("database is locked" in r.getMessage() for r in retries)


@APIS
async def test_without_retries_the_same_lock_fails_the_run_with_database_is_locked(api: str, tmp_path: Path) -> None:
    """The control for the test above: the fault is real, and it is fatal unretried."""
    path = tmp_path / "locked.db"
    with ExitStack() as cleanup:
        async with set_up(SQLSaver.from_conn_string(f"sqlite:///{path}", engine_options=BUSY), api) as saver:
            graph = agent_graph(TakesTheWriteLock(path, 1.0, cleanup)).compile(checkpointer=saver)
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                await run_to_end(api, graph, "locked", question(QUESTION))


# --- MariaDB: a deadlock victim, a killed connection ---------------------------------------


class LockHolder:
    """Another MariaDB session on the test database, taking row locks against the saver."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url).set(drivername="mysql+pymysql")
        self.engine = sa.create_engine(self.url, isolation_level="READ COMMITTED", poolclass=sa.NullPool)
        self.admin = sa.create_engine(admin_url("mysql"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        self.conn = self.engine.connect()

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()
        self.admin.dispose()

    def waiting_saver_connection(self, table: str = "cpsql_checkpoints", *, other_than: int | None = None) -> int:
        """The id of the saver's connection once its write into `table` is blocked by one of our locks.

        Read from the process list rather than from ``INNODB_TRX``, which MariaDB may
        show late for a transaction that starts right after another was killed.
        """
        for _ in range(500):
            with self.admin.connect() as conn:
                waiting = conn.execute(
                    sa.text(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND COMMAND = 'Query' "
                        "AND INFO LIKE :statement AND ID <> :other"
                    ),
                    {"db": self.url.database, "statement": f"INSERT INTO {table}%", "other": other_than or 0},
                ).scalar()
            if waiting is not None:
                return int(waiting)
            threading.Event().wait(0.01)
        raise AssertionError("the saver never waited for the lock")


async def saver_on(api: str, url: str, policy: RetryPolicy) -> RetryingSaver[str]:
    saver = RetryingSaver.from_conn_string(url, policy=policy)
    if api == "sync":
        saver.setup()
    else:
        await saver.asetup()
    return saver


async def close(api: str, saver: RetryingSaver[str]) -> None:
    if api == "async":
        await saver.aclose()
    else:
        saver.close()


def start_put(api: str, saver: RetryingSaver[str], *args: Any) -> asyncio.Future[Any]:
    """The saver's put running in the background, while the test plays the other session."""
    if api == "sync":
        return asyncio.ensure_future(asyncio.to_thread(saver.put, *args))
    return asyncio.ensure_future(saver.aput(*args))


@APIS
async def test_a_mariadb_deadlock_victim_is_retried_and_the_other_transaction_survives(
    api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The saver overwrites a checkpoint: it locks the blob row, then waits for the
    checkpoint row, which the other session holds. The other session then asks for
    the blob row: a deadlock. InnoDB rolls back the lighter transaction, the saver's
    (the other one has written 200 rows first). The retry waits for the other session
    to commit, then succeeds."""
    require("mysql")
    policy = RetryPolicy(max_retries=3, base_delay=0.05, jitter=0)
    with fresh_database("mysql", tmp_path) as url:
        saver = await saver_on(api, url, policy)
        holder = LockHolder(url)
        try:
            cp = checkpoint({"a": "value"})
            stored = saver.put(config("t"), cp, {"step": 1}, {"a": 1})
            holder.conn.exec_driver_sql("CREATE TABLE ballast (n INT PRIMARY KEY)")
            holder.conn.commit()
            holder.conn.exec_driver_sql("INSERT INTO ballast VALUES " + ",".join(f"({n})" for n in range(200)))
            holder.conn.exec_driver_sql("SELECT checkpoint_id FROM cpsql_checkpoints FOR UPDATE").all()
            put = start_put(api, saver, config("t"), cp, {"step": 1}, {"a": 1})
            await asyncio.to_thread(holder.waiting_saver_connection)
            await asyncio.to_thread(lambda: holder.conn.exec_driver_sql("SELECT * FROM cpsql_blobs FOR UPDATE").all())
            await asyncio.to_thread(holder.waiting_saver_connection, "cpsql_")  # the retry, waiting again
            holder.conn.commit()
            assert await put == stored
            assert (await asyncio.to_thread(saver.get_tuple, config("t"))).checkpoint["id"] == cp["id"]
            ballast = holder.conn.exec_driver_sql("SELECT count(*) FROM ballast").scalar()
        finally:
            holder.close()
            await close(api, saver)

    retries = retries_logged(caplog)
    report(f"mariadb deadlock/{api}", operations=1, deadlocks=1, retries=len(retries), completed="1/1")
    assert len(retries) == 1 and "(1213, 'Deadlock found" in retries[0].getMessage()
    assert ballast == 200, "the other session's transaction was not the victim"


@APIS
async def test_a_mariadb_connection_killed_in_the_middle_of_a_transaction_is_retried(
    api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The saver's put is waiting for a row lock when its connection is killed (`KILL`
    from another session). The retry runs on a new connection, waits for the same lock
    and succeeds once the other session commits."""
    require("mysql")
    policy = RetryPolicy(max_retries=3, base_delay=0.05, jitter=0)
    with fresh_database("mysql", tmp_path) as url:
        saver = await saver_on(api, url, policy)
        holder = LockHolder(url)
        try:
            cp = checkpoint({"a": "value"})
            stored = saver.put(config("t"), cp, {"step": 1}, {"a": 1})
            holder.conn.exec_driver_sql("SELECT checkpoint_id FROM cpsql_checkpoints FOR UPDATE").all()
            put = start_put(api, saver, config("t"), cp, {"step": 1}, {"a": 1})
            victim = await asyncio.to_thread(holder.waiting_saver_connection)
            with holder.admin.connect() as admin:
                admin.exec_driver_sql(f"KILL {victim}")
            await asyncio.to_thread(holder.waiting_saver_connection, other_than=victim)
            holder.conn.commit()
            assert await put == stored
        finally:
            holder.close()
            await close(api, saver)

    retries = retries_logged(caplog)
    report(f"mariadb killed connection/{api}", operations=1, kills=1, retries=len(retries), completed="1/1")
    assert len(retries) == 1 and any(code in retries[0].getMessage() for code in ("2013", "1927", "2006"))
