"""Helpers for the retry tests: real database faults injected from outside (killed
server connections, a SQLite write lock held by another process), a recorder for the
policy's sleeps, and the retry warnings it logged.

Nothing here imitates a database: each tool makes a real server (or SQLite file) fail
the way production does, from the outside, while the code under test runs unchanged.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.conftest import admin_url


@dataclass
class RecordedSleeps:
    """A sleep hook for tenacity that records each delay instead of sleeping."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The retry warnings a policy logged during the test."""
    return [r for r in caplog.records if r.name == "checkpoint_sql.retry" and r.levelno == logging.WARNING]


def with_application_name(url: str, name: str) -> str:
    """`url` with its PostgreSQL connections labelled `name`, so a killer can find them."""
    return make_url(url).update_query_dict({"application_name": name}).render_as_string(hide_password=False)


class ConnectionKiller:
    """Kills the server connections of one saver at random short intervals, from
    another connection, until stopped: ``pg_terminate_backend`` on PostgreSQL (the
    saver's connections are found by application name), ``KILL`` on MariaDB (by the
    database they use). `killed` counts the connections it ended."""

    def __init__(self, engine: str, target: str, *, interval: tuple[float, float] = (0.02, 0.06)) -> None:
        self.engine = engine
        self.target = target
        self.interval = interval
        self.killed = 0
        self._stop = threading.Event()
        self._admin = sa.create_engine(admin_url(engine), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self._thread = threading.Thread(target=self._loop, name=f"killer-{engine}", daemon=True)

    def __enter__(self) -> ConnectionKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._admin.dispose()

    def _loop(self) -> None:
        with self._admin.connect() as conn:
            while not self._stop.wait(random.uniform(*self.interval)):
                self.killed += self.kill_once(conn)

    def kill_once(self, conn: sa.Connection) -> int:
        if self.engine == "postgresql":
            ended = conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.target},
            ).scalar_one()
            return int(ended)
        ids = conn.execute(
            sa.text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> CONNECTION_ID()"),
            {"db": self.target},
        ).scalars()
        ended = 0
        for connection_id in list(ids):
            try:
                conn.exec_driver_sql(f"KILL {int(connection_id)}")
                ended += 1
            except sa.exc.OperationalError:  # it closed by itself meanwhile (1094 unknown thread)
                pass
        return ended


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS lock_holder (at REAL)")
conn.execute("INSERT INTO lock_holder VALUES (?)", (time.time(),))
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextmanager
def sqlite_write_lock(path: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process takes the SQLite write lock of `path` and keeps it for `seconds`;
    the block is entered once the lock is held."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.wait(timeout=seconds + 10)
