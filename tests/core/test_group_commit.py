"""SQLite group commit: concurrent writers of one process share commits, yet each
write stays as atomic and durable as on its own."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import Database, SQLSaver
from checkpoint_sql.core.intent import Intent
from tests.helpers import checkpoint, config, count, put_chain


def _count_statements(db: Database) -> Counter[str]:
    """Statements SQLite executes on this database's sync connections, by first word."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def trace(statement: str) -> None:
        with lock:
            seen[statement.split()[0].upper()] += 1

    sa.event.listen(db.sync_engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(trace))
    db.sync_engine.dispose()  # connections made from now on are traced
    return seen


def test_concurrent_writers_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    with SQLSaver.from_conn_string(f"sqlite:///{tmp_path}/group.db") as saver:
        saver.setup()
        statements = _count_statements(saver.db)
        threads = [threading.Thread(target=put_chain, args=(saver, f"thread-{n}", 30)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert count(saver, "checkpoints") == 8 * 30
        assert statements["COMMIT"] < 8 * 30, f"{statements['COMMIT']} commits for 240 puts: none shared"
        assert statements["SAVEPOINT"] == 0, "writes sharing a commit cost no statement of their own"


def _insert(conn: sa.Connection, value: str, fail: bool = False, pause: float = 0.0) -> str:
    conn.execute(sa.text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})
    time.sleep(pause)
    if fail:
        raise ValueError(f"{value} refused after its insert")
    return value


@pytest.fixture
def notes_db(tmp_path: Path) -> Any:
    db = Database(f"sqlite:///{tmp_path}/notes.db")
    with db.sync_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (value TEXT)")
    yield db
    db.close()


def _values(db: Database) -> list[str]:
    with db.sync_engine.connect() as conn:
        return sorted(conn.exec_driver_sql("SELECT value FROM notes").scalars())


def test_a_failing_write_is_rolled_back_alone_and_only_its_caller_sees_the_error(notes_db: Database) -> None:
    statements = _count_statements(notes_db)
    results: dict[str, Any] = {}

    def write(value: str, fail: bool = False, pause: float = 0.0) -> None:
        try:
            results[value] = notes_db.run(_insert, value, fail, pause, intent=Intent.GROUPED_WRITE)
        except ValueError as exc:
            results[value] = exc

    leader = threading.Thread(target=write, args=("slow", False, 0.3))
    leader.start()
    time.sleep(0.05)  # "slow" holds the transaction; the next three queue behind it
    statements.clear()
    followers = [threading.Thread(target=write, args=(v, v == "b")) for v in ("a", "b", "c")]
    for t in followers:
        t.start()
    for t in [leader, *followers]:
        t.join()

    assert _values(notes_db) == ["a", "c", "slow"]
    assert results["a"] == "a" and results["c"] == "c"
    assert isinstance(results["b"], ValueError)
    assert statements["SAVEPOINT"] == 0, "a shared transaction costs no savepoint per write"
    assert statements["ROLLBACK"] == 1, "the transaction a, b and c shared, undone when b failed"
    assert statements["COMMIT"] == 3, "one for 'slow', then a and c again, each alone"


def test_a_failing_async_write_is_rolled_back_alone_too(notes_db: Database) -> None:
    """The same rule when the batch is led from the event loop: tasks queued behind a
    slow write share its successor's transaction, and the one that fails costs the
    others a transaction of their own, not their writes."""
    statements = _count_statements(notes_db)

    async def writers() -> list[Any]:
        slow = asyncio.create_task(notes_db.arun(_insert, "slow", False, 0.3, intent=Intent.GROUPED_WRITE))
        await asyncio.sleep(0.05)
        statements.clear()
        queued = [notes_db.arun(_insert, v, v == "b", intent=Intent.GROUPED_WRITE) for v in ("a", "b", "c")]
        return list(await asyncio.gather(slow, *queued, return_exceptions=True))

    slow, a, b, c = asyncio.run(writers())
    assert (slow, a, c) == ("slow", "a", "c")
    assert isinstance(b, ValueError)
    assert _values(notes_db) == ["a", "c", "slow"]
    assert statements["ROLLBACK"] == 1 and statements["COMMIT"] == 3 and statements["SAVEPOINT"] == 0


def test_threads_and_async_tasks_share_one_queue(notes_db: Database) -> None:
    async def async_writers() -> list[str]:
        return list(
            await asyncio.gather(*(notes_db.arun(_insert, f"task-{i}", intent=Intent.GROUPED_WRITE) for i in range(20)))
        )

    threads = [
        threading.Thread(target=notes_db.run, args=(_insert, f"thread-{i}"), kwargs={"intent": Intent.GROUPED_WRITE})
        for i in range(20)
    ]
    for t in threads:
        t.start()
    written = asyncio.run(async_writers())
    for t in threads:
        t.join()
    assert written == [f"task-{i}" for i in range(20)]
    assert len(_values(notes_db)) == 40


def test_an_async_write_waiting_for_the_lock_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock for half a second; the coroutine
    waiting to write must not freeze every other coroutine meanwhile."""
    path = tmp_path / "busy.db"

    async def scenario(saver: SQLSaver) -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        ticker.cancel()
        return ticks

    with SQLSaver.from_conn_string(f"sqlite:///{path}") as saver:
        saver.setup()
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, holder.rollback).start()
        ticks = asyncio.run(scenario(saver))
        holder.close()
        assert saver.get_tuple(config("t")).checkpoint["channel_values"] == {"a": 1}
    assert ticks >= 20, f"the event loop ran only {ticks} ticks in 0.5 s"


def test_a_cancelled_waiting_writer_neither_runs_nor_strands_the_queue(notes_db: Database) -> None:
    async def scenario() -> None:
        doomed = asyncio.create_task(notes_db.arun(_insert, "cancelled", intent=Intent.GROUPED_WRITE))
        after = asyncio.create_task(notes_db.arun(_insert, "after", intent=Intent.GROUPED_WRITE))
        await asyncio.sleep(0.05)  # both are queued behind the slow writer
        doomed.cancel()
        await after
        with pytest.raises(asyncio.CancelledError):
            await doomed

    slow = threading.Thread(
        target=notes_db.run, args=(_insert, "slow", False, 0.3), kwargs={"intent": Intent.GROUPED_WRITE}
    )
    slow.start()
    time.sleep(0.05)
    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    slow.join()
    assert _values(notes_db) == ["after", "slow"]


def test_writes_that_must_run_alone_get_their_own_transaction(notes_db: Database) -> None:
    statements = _count_statements(notes_db)
    threads = [
        threading.Thread(target=notes_db.run, args=(_insert, f"v{i}"), kwargs={"intent": Intent.WRITE})
        for i in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statements["COMMIT"] == 5 and statements["SAVEPOINT"] == 0
    assert len(_values(notes_db)) == 5


def test_a_saver_used_from_many_threads_keeps_every_thread_readable(tmp_path: Path) -> None:
    with SQLSaver.from_conn_string(f"sqlite:///{tmp_path}/many.db") as saver:
        saver.setup()
        threads = [threading.Thread(target=put_chain, args=(saver, f"t{n}", 10)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in range(6):
            assert saver.get_tuple(config(f"t{n}")).checkpoint["channel_values"] == {"step": 9}
        assert saver.put(config("last"), checkpoint({"a": 1}), {}, {"a": 1})
