"""Raw DBAPI connections for the hot path, and the statements run on them.

The hot operations (`operations.read`, `operations.write`) run compiled SQL on a
`Link`: a DBAPI connection checked out for one transaction, with the dialect that
compiled its statements. Going through a SQLAlchemy `Connection` instead cost more
than the statements themselves on a local server (its construction, its logical
transaction, per-statement event dispatch), so `Database` hands the hot operations
a `Link` straight off the pool (`Link.checkout`) or, on SQLite, off the connections
it holds itself (`HeldConnections`), and only when it has to, a `Link` onto the
connection of an SQLAlchemy `Connection` (`Link.of`, for engines the caller lent
us, whose isolation SQLAlchemy manages, and for SQLite group-commit batches that mix
hot and Core operations).

Driver errors are wrapped into SQLAlchemy's exception classes and a connection the
dialect recognises as dropped is invalidated, exactly as `Connection.execute` does,
so callers and retry policies see one kind of error whichever path ran.

On MySQL/MariaDB connections that engines.py opened with multi-statement support
(`Link.checkout(..., batch=True)`), the statements of a write transaction are not
sent one by one: `Link.begin` starts *buffering*, and `commit` sends
``START TRANSACTION; ...; COMMIT`` as one query. A put is one round trip instead of
four, and still one transaction. Every value in it is escaped by the driver as in
any other statement.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from checkpoint_sql.dialects.connections import opens_binary_cursors


class Lender(Protocol):
    """Who lent a `Link` its DBAPI connection, and takes it back: SQLAlchemy's pool
    (a `PoolProxiedConnection`) or `HeldConnections`."""

    def close(self) -> None: ...

    def invalidate(self, e: BaseException | None = None) -> None: ...


class Link:
    """One DBAPI connection, for the duration of one operation."""

    __slots__ = ("_batch", "_binary", "_buffer", "_lender", "_owner", "dbapi_connection", "dialect", "invalidated")

    def __init__(
        self,
        dialect: Dialect,
        dbapi_connection: Any,
        *,
        lender: Lender | None = None,
        owner: Connection | None = None,
        batch: bool = False,
    ) -> None:
        self.dialect = dialect
        self.dbapi_connection = dbapi_connection
        self.invalidated = False
        self._lender = lender
        self._owner = owner
        self._batch = batch
        self._binary = opens_binary_cursors(dialect)
        self._buffer: list[tuple[str, Any]] | None = None

    @classmethod
    def checkout(cls, engine: Engine, *, batch: bool = False) -> Link:
        """A connection of `engine`'s pool, returned by `close`. The pool's own checkout
        events (the idle ping, recycling) run as for any other checkout. `batch`: the
        connection accepts several statements per query (see the module's notes)."""
        fairy = engine.raw_connection()
        return cls(engine.dialect, fairy.dbapi_connection, lender=fairy, batch=batch)

    @classmethod
    def of(cls, conn: Connection) -> Link:
        """The DBAPI connection under an SQLAlchemy `Connection`, which stays its owner."""
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None, "the connection was closed"
        return cls(conn.dialect, dbapi_connection, owner=conn)

    # --- statements ---------------------------------------------------------------------

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run `sql` and return every row."""
        self._flush()
        return self._run(sql, params, fetch=True)

    def execute(self, sql: str, params: Any = None) -> None:
        """Run `sql`, which returns no rows (buffered inside a batched transaction)."""
        if self._buffer is not None:
            self._buffer.append((sql, params))
        else:
            self._run(sql, params, fetch=False)

    # --- transactions -------------------------------------------------------------------

    def begin(self, statements: Sequence[str]) -> None:
        """Open a transaction with `statements` (see `dialects.transactions.begin_sql`)."""
        if self._batch:
            self._buffer = [(sql, None) for sql in statements]
            return
        for sql in statements:
            self._run(sql, None, fetch=False)

    def commit(self) -> None:
        if self._buffer is not None:
            self._buffer.append(("COMMIT", None))
            self._flush()
        else:
            self._run("COMMIT", None, fetch=False)

    def rollback(self) -> None:
        """End a failed transaction. If even ROLLBACK fails (the connection broke, the
        caller was cancelled mid-statement), the connection is invalidated: returned to
        the pool half-way through a transaction it would keep its locks."""
        if self._buffer is not None:
            self._buffer = None  # nothing was sent: there is no transaction to end
            return
        if self.invalidated:
            return
        try:
            self._run("ROLLBACK", None, fetch=False)
        except BaseException:
            self.invalidate(None)

    def _flush(self) -> None:
        """Send the buffered statements as one query, then read every result; the
        first failing statement raises, and what ran before it is rolled back."""
        buffer, self._buffer = self._buffer, None
        if not buffer:
            return
        sql = ";\n".join(statement for statement, _ in buffer)
        params = _joined_params([p for _, p in buffer])
        cursor = self.dbapi_connection.cursor()
        try:
            cursor.execute(sql, params)
            for _ in buffer[1:]:  # each statement's result, in order; a failed one raises
                cursor.nextset()
        except self.dialect.loaded_dbapi.Error as exc:
            wrapped = self._wrap(exc, sql, params, cursor)
            if not self.invalidated:
                self.rollback()
            raise wrapped from exc
        finally:
            if not self.invalidated:
                cursor.close()

    def _run(self, sql: str, params: Any, *, fetch: bool) -> list[tuple[Any, ...]]:
        cursor = self.dbapi_connection.cursor(binary=True) if self._binary else self.dbapi_connection.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            return list(cursor.fetchall()) if fetch else []  # every driver of ours returns tuples
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._wrap(exc, sql, params, cursor) from exc
        finally:
            if not self.invalidated:
                cursor.close()

    def _wrap(self, exc: Any, sql: str, params: Any, cursor: Any) -> sa.exc.StatementError:
        invalidated = self.dialect.is_disconnect(exc, self.dbapi_connection, cursor)
        if invalidated:
            self.invalidate(exc)
        return sa.exc.DBAPIError.instance(  # type: ignore[no-any-return]
            sql, params, exc, self.dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=self.dialect
        )

    # --- lifetime -----------------------------------------------------------------------

    def invalidate(self, exc: BaseException | None) -> None:
        """Discard the connection: it is closed, never reused."""
        self.invalidated = True
        if self._lender is not None:
            self._lender.invalidate(exc)
        elif self._owner is not None and not self._owner.invalidated:
            self._owner.invalidate(exc if isinstance(exc, Exception) else None)

    def close(self) -> None:
        """Return a checked-out connection to its pool (a discarded one is closed);
        one borrowed from a `Connection` stays with it."""
        if self._lender is not None:
            self._lender.close()


def _joined_params(groups: Sequence[Any]) -> Any:
    """The parameters of statements sent as one query: named ones merged (their names
    are distinct), positional ones concatenated in statement order."""
    present = [p for p in groups if p is not None]
    if not present:
        return None
    if isinstance(present[0], Mapping):
        merged: dict[str, Any] = {}
        for p in present:
            merged.update(p)
        return merged
    return tuple(v for p in present for v in p)


class HeldConnections:
    """The SQLite connections of one engine of ours, kept open and lent to any thread.

    A file database needs no pool's care (no server to drop an idle connection, no
    ping, no recycling), and checking a connection out of SQLAlchemy's pool and back
    costs about as much as a small read. So connections are opened through the engine
    (its connect event sets WAL and `synchronous`), detached from its pool, and kept
    here: a lent connection is in nobody else's hands, an idle one waits in a LIFO
    stack (list append and pop are atomic). At most `keep` idle ones are kept. A
    process forked from this one never uses the parent's connections (SQLite forbids
    it): it starts with none.
    """

    def __init__(self, engine: Engine, keep: int = 8) -> None:
        self.engine = engine
        self._keep = keep
        self._idle: list[Any] = []
        self._closed = False
        self._guard = threading.Lock()
        self._pid = os.getpid()

    def link(self) -> Link:
        if os.getpid() != self._pid:
            self._idle, self._pid = [], os.getpid()
        try:
            dbapi_connection = self._idle.pop()
        except IndexError:
            fairy = self.engine.raw_connection()
            dbapi_connection = fairy.dbapi_connection
            fairy.detach()
        return Link(self.engine.dialect, dbapi_connection, lender=_Held(self, dbapi_connection))

    def give_back(self, dbapi_connection: Any) -> None:
        with self._guard:
            if not self._closed and len(self._idle) < self._keep:
                self._idle.append(dbapi_connection)
                return
        dbapi_connection.close()

    def close(self) -> None:
        """Close the idle connections; lent ones are closed when they come back."""
        with self._guard:
            self._closed = True
            idle, self._idle = self._idle, []
        for dbapi_connection in idle:
            dbapi_connection.close()


class _Held:
    """The lease of one connection of `HeldConnections`."""

    __slots__ = ("_dbapi_connection", "_owner")

    def __init__(self, owner: HeldConnections, dbapi_connection: Any) -> None:
        self._owner, self._dbapi_connection = owner, dbapi_connection

    def close(self) -> None:
        if self._dbapi_connection is not None:
            self._owner.give_back(self._dbapi_connection)

    def invalidate(self, e: BaseException | None = None) -> None:
        self._dbapi_connection.close()
        self._dbapi_connection = None
