"""Helpers for the retry tests: real database faults injected from outside (killed
server connections, a SQLite write lock held by another process, a network proxy that
cuts a connection or loses a commit's acknowledgement), a recorder for the policy's
sleeps, and the retry warnings it logged.

Nothing here imitates a database: each tool makes a real server (or SQLite file) fail
the way production does, from the outside, while the code under test runs unchanged.
"""

from __future__ import annotations

import logging
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    return [r for r in caplog.records if r.name == "checkpoint_sql.retry.policy" and r.levelno == logging.WARNING]


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


class FaultyProxy:
    """A TCP proxy in front of a database server that injects one network fault when armed.

    * `lose_commit_ack()`: the next write is let through to the server, and the answer
      that reports its commit is thrown away and the connection cut. That answer is the
      reply to COMMIT in an explicit transaction, or the reply to the statement itself
      when it ran alone in autocommit: the proxy reads the server's transaction status
      off the reply (PostgreSQL's ReadyForQuery, MySQL's OK packet). The transaction *is*
      committed; the client only learns that the connection was lost. This is the case
      that makes repeating a write dangerous.
    * `cut_before(marker)`: the next client packet containing `marker` (e.g. the
      table a query reads) is not delivered; the connection is cut instead, as by a
      failover or a pooler in the middle of a query.

    Connect through it without TLS (``sslmode=disable`` on PostgreSQL; the MariaDB
    server here offers none): the proxy reads the bytes to spot those statements and
    replies. `faults` counts the faults it injected.
    """

    def __init__(self, host: str, port: int, protocol: str) -> None:
        self.upstream = (host, port)
        self.committed = _COMMITTED[protocol]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.faults = 0
        self._lose_ack = threading.Event()
        self._cut_marker: bytes | None = None
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_commit_ack(self) -> None:
        self._lose_ack.set()

    def cut_before(self, marker: bytes) -> None:
        self._cut_marker = marker

    def close(self) -> None:
        self._closing = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            link = _Link(client, server)
            threading.Thread(target=self._to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(link,), daemon=True).start()

    def _to_server(self, link: _Link) -> None:
        while data := _recv(link.client):
            with self._lock:
                if self._cut_marker is not None and self._cut_marker in data:
                    self._cut_marker = None
                    self.faults += 1
                    break
                if self._lose_ack.is_set() and any(word in data.upper() for word in (b"INSERT", b"COMMIT")):
                    link.write_sent = True
            if not _send(link.server, data):
                break
        link.close()

    def _to_client(self, link: _Link) -> None:
        while data := _recv(link.server):
            with self._lock:
                if link.write_sent and self._lose_ack.is_set() and self.committed(data):
                    self._lose_ack.clear()
                    self.faults += 1
                    break
            if not _send(link.client, data):
                break
        link.close()


def _postgresql_committed(reply: bytes) -> bool:
    """The reply ends with ReadyForQuery reporting "idle": no transaction is open any more."""
    return reply.endswith(b"Z\x00\x00\x00\x05I")


def _mysql_committed(reply: bytes) -> bool:
    """The reply is an OK packet whose status flags no longer say "in transaction"."""
    if len(reply) < 7 or reply[4] != 0x00:
        return False
    at = 5
    for _ in range(2):  # affected rows, last insert id: length-encoded integers
        first = reply[at]
        at += 1 + {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first, 0)
    in_transaction = 0x0001
    return at + 2 <= len(reply) and not int.from_bytes(reply[at : at + 2], "little") & in_transaction


_COMMITTED = {"postgresql": _postgresql_committed, "mysql": _mysql_committed}


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    write_sent: bool = False

    def close(self) -> None:
        for end in (self.client, self.server):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


@contextmanager
def faulty_proxy(url: str) -> Iterator[tuple[FaultyProxy, str]]:
    """A `FaultyProxy` in front of the server `url` names, and the URL that goes through it."""
    target = make_url(url)
    protocol = "postgresql" if target.get_backend_name().startswith("postgres") else "mysql"
    proxy = FaultyProxy(
        target.host or "127.0.0.1", target.port or (5432 if protocol == "postgresql" else 3306), protocol
    )
    proxied = target.set(host="127.0.0.1", port=proxy.port)
    if protocol == "postgresql":
        proxied = proxied.update_query_dict({"sslmode": "disable"})
    try:
        yield proxy, proxied.render_as_string(hide_password=False)
    finally:
        proxy.close()
