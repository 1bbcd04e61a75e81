"""What an operation may count on from the transaction `Intent` it names, on each
engine, and how work of several transactions (a job) behaves when one of them fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from checkpoint_sql import Database, Lease, SQLSaver
from checkpoint_sql.core.calls import Call, Job, adrive, drive
from checkpoint_sql.core.intent import Intent


@pytest.fixture
def notes(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.run(lambda conn: conn.exec_driver_sql("CREATE TABLE notes (body VARCHAR(40))"), intent=Intent.WRITE)
    yield db
    db.close()


def _add(conn: Connection, body: str) -> None:
    conn.execute(sa.text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})


def _bodies(conn: Connection) -> list[str]:
    return sorted(conn.exec_driver_sql("SELECT body FROM notes").scalars())


def _fail(conn: Connection) -> None:
    raise ValueError("the transaction fails")


def _counted_around_a_commit(db: Database, intent: Intent) -> tuple[int, int]:
    """The notes an operation counts before and after another writer commits one,
    between its two statements."""

    def count_twice(conn: Connection) -> tuple[int, int]:
        before = len(_bodies(conn))
        db.run(_add, "meanwhile", intent=Intent.WRITE)
        return before, len(_bodies(conn))

    return db.run(count_twice, intent=intent)


def test_a_snapshot_read_sees_one_state_while_a_writer_commits(notes: Database) -> None:
    """On SQLite the read does not take the write lock either: the writer commits
    during the read instead of waiting for it to end."""
    assert _counted_around_a_commit(notes, Intent.READ_SNAPSHOT) == (0, 0)
    assert notes.run(_bodies) == ["meanwhile"]


def test_a_plain_read_sees_each_commit_on_the_servers(notes: Database) -> None:
    """READ COMMITTED on PostgreSQL and MySQL; on SQLite a read transaction always is
    a snapshot."""
    expected = (0, 0) if notes.family == "sqlite" else (0, 1)
    assert _counted_around_a_commit(notes, Intent.READ) == expected


def _cleaning_up() -> Job[None]:
    try:
        yield Call(_fail, (), intent=Intent.WRITE)
    finally:
        yield Call(_add, ("cleaned up",), intent=Intent.WRITE)


async def test_a_failed_transaction_raises_inside_the_job_so_it_can_clean_up(notes: Database) -> None:
    with pytest.raises(ValueError, match="the transaction fails"):
        drive(notes, _cleaning_up())
    with pytest.raises(ValueError, match="the transaction fails"):
        await adrive(notes, _cleaning_up())
    assert notes.run(_bodies) == ["cleaned up", "cleaned up"]


def _lease(saver: SQLSaver, holder: str) -> Lease:
    return Lease(saver.db, saver.tables.leases, "nightly", ttl=30.0, holder=holder)


async def test_work_under_a_lease_runs_for_its_holder_only_and_a_failure_frees_it(saver: SQLSaver) -> None:
    a, b = _lease(saver, "replica-a"), _lease(saver, "replica-b")
    ran: list[str] = []

    def answer(conn: Connection) -> int:
        ran.append("answered")
        return 42

    with pytest.raises(ValueError):
        drive(saver.db, b.holding(Call(_fail, (), intent=Intent.WRITE), keep_for=60))
    work = Call(answer, (), intent=Intent.WRITE)
    assert drive(saver.db, a.holding(work, keep_for=60)) == 42, "b's failure left the lease free at once"
    assert await adrive(saver.db, b.holding(work, keep_for=60)) is None, "a keeps it for 60 s"
    assert ran == ["answered"], "the work of a process without the lease does not run"
