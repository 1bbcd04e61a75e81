"""`RetryPolicy`, the piece the saver wrapper and the companion stores share.

The backoff schedule is read through tenacity's sleep hook (a recorder instead of a
sleep), never by the clock. The faults are real: SQLite's write lock held by another
connection, a server port that nobody listens on, a duplicate primary key.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import (
    ConfigurationError,
    Database,
    EngineOptions,
    InvalidConfigError,
    RetryExhaustedError,
    RetryingSaver,
    RetryPolicy,
    SchemaNotReadyError,
    SQLSaver,
    ThreadNotFoundError,
)
from checkpoint_sql.core.intent import Intent
from tests.faults import RecordedSleeps, retries_logged
from tests.helpers import checkpoint, config


@pytest.fixture(autouse=True)
def _capture_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="checkpoint_sql.retry.policy")


class LockedWrite:
    """A write to a SQLite file whose write lock another connection holds: it fails with
    SQLite's own "database is locked" until `release()`. `attempts` counts the tries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.attempts = 0
        self.holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.holder.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")
        self.holder.execute("BEGIN IMMEDIATE")

    def __call__(self) -> str:
        self.attempts += 1
        conn = sqlite3.connect(self.path, timeout=0)
        try:
            conn.execute("INSERT INTO t VALUES (?)", (self.attempts,))
            conn.commit()
        finally:
            conn.close()
        return "written"

    async def acall(self) -> str:
        return self()

    def release(self) -> None:
        self.holder.execute("ROLLBACK")


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[LockedWrite]:
    write = LockedWrite(tmp_path / "locked.db")
    yield write
    write.holder.close()


def policy(sleeps: RecordedSleeps, **settings: Any) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, asleep=sleeps.asleep, **settings)


# --- the schedule ------------------------------------------------------------------------


def test_the_wait_doubles_from_base_delay_until_max_delay_caps_it(locked: LockedWrite) -> None:
    sleeps = RecordedSleeps()
    with pytest.raises(RetryExhaustedError):
        policy(sleeps, max_retries=6, base_delay=0.5, max_delay=4.0, jitter=0).call(locked)
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert locked.attempts == 7


async def test_async_calls_follow_the_same_schedule_through_the_async_sleep_hook(locked: LockedWrite) -> None:
    sleeps = RecordedSleeps()
    with pytest.raises(RetryExhaustedError):
        await policy(sleeps, max_retries=4, base_delay=0.25, max_delay=1.0, jitter=0).acall(locked.acall)
    assert sleeps.delays == [0.25, 0.5, 1.0, 1.0]
    assert locked.attempts == 5


def test_jitter_adds_up_to_jitter_seconds_and_never_passes_the_cap(locked: LockedWrite) -> None:
    """Jitter spreads the retries of clients that lost the same server at once; the cap
    still bounds every single wait."""
    sleeps = RecordedSleeps()
    for _ in range(20):
        with pytest.raises(RetryExhaustedError):
            policy(sleeps, max_retries=3, base_delay=0.5, max_delay=1.2, jitter=0.3).call(locked)
    first, second, third = sleeps.delays[0::3], sleeps.delays[1::3], sleeps.delays[2::3]
    assert all(0.5 <= d <= 0.8 for d in first) and len(set(first)) > 1
    assert all(1.0 <= d <= 1.2 for d in second)
    assert third == [1.2] * 20


def test_a_fault_that_clears_within_the_budget_is_invisible_to_the_caller(locked: LockedWrite) -> None:
    sleeps = RecordedSleeps()

    def release_on_third_wait(seconds: float) -> None:
        sleeps(seconds)
        if len(sleeps.delays) == 3:
            locked.release()

    retry = RetryPolicy(max_retries=5, base_delay=0.1, jitter=0, sleep=release_on_third_wait)
    assert retry.call(locked) == "written"
    assert locked.attempts == 4


# --- what the caller and the operator see ------------------------------------------------


def test_every_retry_is_logged_at_warning_with_operation_attempt_delay_and_error_class(
    locked: LockedWrite, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RetryExhaustedError):
        policy(RecordedSleeps(), max_retries=2, base_delay=0.5, jitter=0).call(locked)
    records = retries_logged(caplog)
    assert [r.getMessage() for r in records] == [
        "LockedWrite failed on attempt 1 of 3 with OperationalError: database is locked; retrying in 0.50 s",
        "LockedWrite failed on attempt 2 of 3 with OperationalError: database is locked; retrying in 1.00 s",
    ]
    assert [(r.operation, r.attempt, r.delay, r.error_class) for r in records] == [  # type: ignore[attr-defined]
        ("LockedWrite", 1, 0.5, "OperationalError"),
        ("LockedWrite", 2, 1.0, "OperationalError"),
    ]


def test_exhaustion_says_how_many_attempts_were_made_and_chains_the_last_fault(locked: LockedWrite) -> None:
    with pytest.raises(RetryExhaustedError) as failure:
        policy(RecordedSleeps(), max_retries=3, base_delay=0.1, jitter=0).call(locked)
    assert str(failure.value) == (
        "LockedWrite failed after 4 attempts (max_retries=3); the last one with OperationalError: database is locked"
    )
    assert failure.value.attempts == 4 and failure.value.operation == "LockedWrite"
    assert isinstance(failure.value.__cause__, sqlite3.OperationalError)


def test_an_unreachable_server_is_retried_and_its_password_appears_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on port 1: the connection is refused, which a restarting server
    looks like, so it is retried. The URL carries a password that no log line and no
    error message may show."""
    sleeps = RecordedSleeps()
    with SQLSaver("postgresql://app:hunter2@127.0.0.1:1/db") as inner:
        saver = RetryingSaver(inner, policy=policy(sleeps, max_retries=2, base_delay=0.1, jitter=0))
        with pytest.raises(RetryExhaustedError) as failure:
            saver.get_tuple(config("t"))
    assert sleeps.delays == [0.1, 0.2]
    assert "EngineUnreachableError: cannot connect to postgresql://app:***@127.0.0.1:1/db" in str(failure.value)
    assert "hunter2" not in str(failure.value) and "hunter2" not in caplog.text
    assert len(retries_logged(caplog)) == 2


# --- what is never retried ---------------------------------------------------------------


def test_an_integrity_error_is_raised_on_the_first_attempt(tmp_path: Path) -> None:
    """A duplicate key would be a duplicate key again; retrying only delays the error."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/dup.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    attempts = 0

    def insert_duplicate() -> None:
        nonlocal attempts
        attempts += 1
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")

    sleeps = RecordedSleeps()
    with pytest.raises(sa.exc.IntegrityError):
        policy(sleeps).call(insert_duplicate)
    assert attempts == 1 and sleeps.delays == []
    engine.dispose()


@pytest.mark.parametrize(
    ("error", "call"),
    [
        (InvalidConfigError, lambda s: s.put({"configurable": {}}, checkpoint(), {}, {})),
        (ThreadNotFoundError, lambda s: s.copy_thread("missing", "target")),
        (SchemaNotReadyError, lambda s: s.get_tuple(config("t"))),
    ],
    ids=["invalid-config", "thread-not-found", "schema-not-ready"],
)
def test_checkpoint_sql_own_errors_are_raised_on_the_first_attempt(
    error: type[Exception], call: Callable[[RetryingSaver[str]], Any], tmp_path: Path
) -> None:
    """Each names something the caller must change; a retry would wait for nothing. One
    attempt means no wait at all: the policy sleeps before every further attempt."""
    sleeps = RecordedSleeps()
    with SQLSaver(f"sqlite:///{tmp_path}/t.db") as inner:
        if error is not SchemaNotReadyError:
            inner.setup()
        with pytest.raises(error):
            call(RetryingSaver(inner, policy=policy(sleeps)))
    assert sleeps.delays == []


# --- extending and sharing ---------------------------------------------------------------


def test_an_extra_classifier_adds_to_the_default_one(locked: LockedWrite) -> None:
    """An application retries its own transient error too, and SQLite's lock still is."""
    sleeps = RecordedSleeps()
    retry = policy(sleeps, max_retries=2, base_delay=0.1, jitter=0, is_transient=lambda e: isinstance(e, TimeoutError))
    outcomes: list[Any] = [TimeoutError("pool busy"), "done"]

    def flaky_application_call() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry.call(flaky_application_call) == "done"
    with pytest.raises(RetryExhaustedError):
        retry.call(locked)
    assert sleeps.delays == [0.1, 0.1, 0.2]


def test_one_policy_serves_anything_that_runs_one_transaction_per_call(tmp_path: Path) -> None:
    """What a companion store does with the shared policy: run its own operation on the
    shared `Database` through ``policy.call``. Here another connection holds the SQLite
    write lock for 0.3 s while the store's busy timeout is 20 ms."""
    path = tmp_path / "store.db"
    db = Database(f"sqlite:///{path}", options=EngineOptions(busy_timeout=0.02))
    db.run(lambda conn: conn.exec_driver_sql("CREATE TABLE notes (body TEXT)"), intent=Intent.WRITE)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.execute, ("COMMIT",)).start()

    def add_note(conn: sa.Connection, body: str) -> None:
        conn.execute(sa.text("INSERT INTO notes VALUES (:body)"), {"body": body})

    shared = RetryPolicy(max_retries=6, base_delay=0.05, jitter=0)
    shared.call(db.run, add_note, "remember the milk", intent=Intent.WRITE)
    assert db.run(lambda conn: conn.exec_driver_sql("SELECT body FROM notes").scalar()) == "remember the milk"
    holder.close()
    db.close()


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigurationError, match="base_delay"):
        RetryPolicy(base_delay=-0.5)
    with pytest.raises(ConfigurationError, match="either policy= or individual retry settings"):
        RetryingSaver(SQLSaver("sqlite://"), policy=RetryPolicy(), max_retries=5)
