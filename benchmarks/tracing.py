"""Counting what a saver sends to the database, at the driver, and capturing it for replay.

Our hot path runs compiled statements on the raw DBAPI cursor, bypassing SQLAlchemy's
`Connection.execute`, so SQLAlchemy's cursor events would miss most of them. Counting
therefore happens below every saver, at the level each driver offers:

* SQLite: `sqlite3.Connection.set_trace_callback`, called by SQLite for every statement it
  runs, including the BEGIN/COMMIT the sqlite3 module issues on its own.
* PostgreSQL: libpq's protocol trace (`PGconn.trace`): every message sent and received.
  A *statement* is an Execute (extended protocol) or a Query (simple protocol); a
  *round trip* is a switch from sending to receiving, so a pipeline of statements that
  waits once counts once.
* MySQL/MariaDB (PyMySQL): every command the connection sends (`_execute_command`): one
  round trip each, and as many statements as the query holds (our write transactions
  travel as one ``START TRANSACTION; ...; COMMIT`` query).

SQLAlchemy's ``before_cursor_execute`` event is also counted on our engines: how many of
the statements went through SQLAlchemy's `Connection.execute` rather than the raw cursor.

For the raw-driver floor, statements are also *captured* with their parameters at the
DBAPI cursor (a cursor subclass for each driver), so that `replay` can run exactly the
same statements on a bare driver connection.

Hooks slow a connection down, so counting uses connections of their own, never the ones
being timed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pymysql
import pymysql.cursors
import sqlalchemy as sa

_COM_QUERY = 3
_COM_PING = 14


@dataclass
class Captured:
    """A statement as handed to a DBAPI cursor."""

    sql: str
    params: Any
    many: bool


@dataclass
class Counted:
    """What one window of calls sent to the database."""

    statements: int = 0
    round_trips: int = 0
    commits: int = 0
    via_sqlalchemy: int = 0
    texts: list[str] = field(default_factory=list)
    captured: list[Captured] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "round_trips": self.round_trips,
            "commits": self.commits,
            "via_sqlalchemy": self.via_sqlalchemy,
            "texts": [_short(t) for t in self.texts if t != SYNC],
        }

    def scaled(self, calls: int) -> dict[str, float]:
        """Per-call averages over a window of `calls` calls."""
        return {
            "statements": self.statements / calls,
            "round_trips": self.round_trips / calls,
            "commits": self.commits / calls,
            "via_sqlalchemy": self.via_sqlalchemy / calls,
        }


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "WITH")
_DML = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


SYNC = "<sync>"
"""Marker of a PostgreSQL Sync message in statement texts: it commits the implicit
transaction of the autocommit statements sent since the previous one (a pipeline)."""


def commits_of(texts: Sequence[str]) -> int:
    """Write transactions committed: explicit COMMITs, plus writes run outside any
    transaction (autocommit: each is its own, except on PostgreSQL, where the statements
    between two Syncs share one implicit transaction)."""
    commits, open_tx, pending = 0, False, False
    extended = SYNC in texts
    for text in texts:
        if text == SYNC:
            commits += pending
            pending = False
            continue
        words = text.strip().split(None, 1)
        head = words[0].upper().rstrip(";") if words else ""
        if head in ("BEGIN", "START"):
            open_tx = True
        elif head in ("COMMIT", "END"):
            commits += 1
            open_tx = False
        elif head == "ROLLBACK":
            open_tx = False
        elif not open_tx and head in _WRITES and (head != "WITH" or _DML.search(text)):
            if extended:
                pending = True
            else:
                commits += 1
    return commits + pending


class _State:
    """The open counting window, shared by every hook (one at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Counted | None = None
        self.capture = False
        self.pg_tracers: list[PgTracer] = []

    def statement(self, text: str) -> None:
        self.query([text])

    def query(self, texts: list[str]) -> None:
        """One round trip carrying `texts` (one statement each)."""
        window = self.active
        if window is not None:
            with self.lock:
                window.statements += len(texts)
                window.round_trips += 1
                window.texts.extend(texts)

    def captured(self, sql: str, params: Any, many: bool) -> None:
        window = self.active
        if window is not None and self.capture:
            with self.lock:
                window.captured.append(Captured(sql, params, many))

    def via_sqlalchemy(self) -> None:
        window = self.active
        if window is not None:
            with self.lock:
                window.via_sqlalchemy += 1


STATE = _State()


# --- SQLite ------------------------------------------------------------------------------


class CapturingSqliteCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> CapturingSqliteCursor:
        STATE.captured(sql, parameters, False)
        super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> CapturingSqliteCursor:
        rows = list(seq_of_parameters)
        STATE.captured(sql, rows, True)
        super().executemany(sql, rows)
        return self


class CapturingSqliteConnection(sqlite3.Connection):
    """A sqlite3 connection whose cursors capture statements (`sqlite3.connect(factory=)`)."""

    def cursor(self, factory: Any = CapturingSqliteCursor) -> Any:
        return super().cursor(factory)


def attach_sqlite(conn: sqlite3.Connection) -> None:
    conn.set_trace_callback(STATE.statement)


# --- PostgreSQL ----------------------------------------------------------------------------


class CapturingPgCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        STATE.captured(query if isinstance(query, str) else str(query), params, False)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        rows = list(params_seq)
        STATE.captured(query if isinstance(query, str) else str(query), rows, True)
        super().executemany(query, rows, **kwargs)


_PG_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)", re.MULTILINE)
_PG_PARSE = re.compile(r'^\s*"([^"]*)" "(.*)" \d+(?: \S+)*\s*$', re.DOTALL)
_PG_BIND = re.compile(r'^\s*"([^"]*)" "([^"]*)"')
_PG_QUERY = re.compile(r'^\s*"(.*)"\s*$', re.DOTALL)


class PgTraceParser:
    """Reads libpq trace text incrementally, remembering prepared statements (their
    Parse may come long before the Bind/Execute that runs them). A message starts a
    line with its direction, length and type; SQL text inside it may span lines."""

    def __init__(self) -> None:
        self.prepared: dict[str, str] = {}
        self.bound = ""
        self.last = ""

    def feed(self, text: str) -> tuple[int, int, list[str]]:
        """Statements, round trips and statement texts in `text`."""
        statements = round_trips = 0
        texts: list[str] = []
        heads = list(_PG_MESSAGE.finditer(text))
        for i, head in enumerate(heads):
            direction, kind = head.groups()
            body = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            if direction == "B" and self.last == "F":
                round_trips += 1
            self.last = direction
            if direction != "F":
                continue
            if kind == "Parse" and (parse := _PG_PARSE.match(body)):
                self.prepared[parse.group(1)] = parse.group(2)
            elif kind == "Bind" and (bind := _PG_BIND.match(body)):
                self.bound = self.prepared.get(bind.group(2), "?")
            elif kind == "Execute":
                statements += 1
                texts.append(self.bound)
            elif kind == "Query" and (query := _PG_QUERY.match(body)):
                statements += 1
                texts.extend((query.group(1), SYNC))
            elif kind == "Sync":
                texts.append(SYNC)
        return statements, round_trips, texts


class PgTracer:
    """A psycopg connection traced for as long as it lives (it is never timed). The
    trace is read at each window's start and end; libpq flushes it on `untrace`."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.parser = PgTraceParser()
        self.fd, self.path = -1, ""
        self._start()

    def _start(self) -> None:
        self.fd, self.path = tempfile.mkstemp(prefix="cpsql-pgtrace-")
        self.conn.pgconn.trace(self.fd)
        self.conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)

    def drain(self) -> tuple[int, int, list[str]]:
        """What was traced since the last drain; tracing goes on (while the connection is open)."""
        with contextlib.suppress(Exception):
            self.conn.pgconn.untrace()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with open(self.path, encoding="utf-8", errors="replace") as f:
            result = self.parser.feed(f.read())
        os.unlink(self.path)
        if not self.conn.closed:
            self._start()
        else:
            self.fd, self.path = -1, ""
        return result

    @property
    def alive(self) -> bool:
        if self.fd >= 0 and self.conn.closed:
            with contextlib.suppress(OSError):
                os.close(self.fd)
                os.unlink(self.path)
            self.fd = -1
        return self.fd >= 0


def attach_psycopg(conn: psycopg.Connection[Any], *, capture: bool = False) -> None:
    if capture:
        conn.cursor_factory = CapturingPgCursor
    STATE.pg_tracers.append(PgTracer(conn))


@contextlib.contextmanager
def _pg_traced() -> Iterator[list[tuple[int, int, list[str]]]]:
    tracers = [t for t in STATE.pg_tracers if t.alive]
    STATE.pg_tracers[:] = tracers
    for tracer in tracers:
        tracer.drain()  # what happened before the window: learn its prepared statements
    results: list[tuple[int, int, list[str]]] = []
    try:
        yield results
    finally:
        results.extend(tracer.drain() for tracer in tracers)


# --- MySQL / MariaDB -------------------------------------------------------------------------


class CapturingMyCursor(pymysql.cursors.Cursor):
    def execute(self, query: Any, args: Any = None) -> int:
        STATE.captured(query, args, False)
        return super().execute(query, args)

    def executemany(self, query: Any, args: Any) -> int | None:
        rows = list(args)
        STATE.captured(query, rows, True)
        return super().executemany(query, rows)


def split_statements(query: str) -> list[str]:
    """The statements of a MySQL query, split at the semicolons outside quotes (PyMySQL
    inlines every value as an escaped literal: backslash escapes, doubled quotes)."""
    statements: list[str] = []
    start, quote, i = 0, "", 0
    while i < len(query):
        char = query[i]
        if quote:
            if char == "\\" and quote != "`":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == ";":
            statements.append(query[start:i])
            start = i + 1
        i += 1
    statements.append(query[start:])
    return [s.strip() for s in statements if s.strip()] or [query]


def attach_pymysql(conn: pymysql.Connection[Any], *, capture: bool = False) -> None:
    if capture:
        conn.cursorclass = CapturingMyCursor
    original = conn._execute_command  # type: ignore[attr-defined]

    def counted(command: int, sql: Any) -> Any:
        if command == _COM_QUERY:
            STATE.query(split_statements(sql.decode("utf-8", "replace") if isinstance(sql, bytes) else str(sql)))
        elif command == _COM_PING:
            window = STATE.active
            if window is not None:
                window.round_trips += 1
                window.texts.append("<ping>")
        return original(command, sql)

    conn._execute_command = counted  # type: ignore[attr-defined]


# --- SQLAlchemy engines ------------------------------------------------------------------------


def attach_engine(engine: sa.Engine) -> None:
    """Count (and capture) everything `engine`'s future connections send. Call before
    the engine opens its first connection."""
    backend = engine.dialect.name

    if backend == "sqlite":

        @sa.event.listens_for(engine, "do_connect")
        def _factory(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["factory"] = CapturingSqliteConnection

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        if backend == "sqlite":
            attach_sqlite(dbapi_connection)
        elif backend == "postgresql":
            attach_psycopg(dbapi_connection, capture=True)
        else:
            attach_pymysql(dbapi_connection, capture=True)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _via_sqlalchemy(*_args: Any) -> None:
        STATE.via_sqlalchemy()


@contextlib.contextmanager
def window(*, capture: bool = False) -> Iterator[Counted]:
    """Count everything attached connections send inside the block."""
    counted = Counted()
    STATE.active, STATE.capture = counted, capture
    try:
        with _pg_traced() as pg:
            yield counted
    finally:
        STATE.active, STATE.capture = None, False
    for statements, round_trips, texts in pg:
        counted.statements += statements
        counted.round_trips += round_trips
        counted.texts.extend(texts)
    counted.commits = commits_of(counted.texts)


# --- replay ------------------------------------------------------------------------------------


@dataclass
class Substitution:
    """Values to swap in captured parameters, so a replayed write hits fresh keys:
    strings are replaced wherever they occur (also inside JSON text), bytes when equal."""

    strings: Mapping[str, str] = field(default_factory=dict)
    blobs: Mapping[bytes, bytes] = field(default_factory=dict)

    def apply(self, value: Any) -> Any:
        if isinstance(value, str):
            for old, new in self.strings.items():
                if old in value:
                    value = value.replace(old, new)
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.blobs.get(bytes(value), value)
        wrapped = getattr(value, "obj", None)  # psycopg.Binary, as SQLAlchemy binds LargeBinary
        if isinstance(wrapped, (bytes, bytearray, memoryview)) and bytes(wrapped) in self.blobs:
            return type(value)(self.blobs[bytes(wrapped)])
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.apply(v) for v in value)
        return value


def replay(conn: Any, statements: Sequence[Captured], substitution: Substitution | None = None) -> list[Any]:
    """Run captured statements on a bare DBAPI connection (sqlite3, psycopg or PyMySQL),
    fetching every row as the saver would; returns the rows fetched."""
    fetched: list[Any] = []
    for st in statements:
        params = st.params if substitution is None else substitution.apply(st.params)
        cursor = conn.cursor()
        try:
            if st.many:
                cursor.executemany(st.sql, params)
            elif params is None or params == ():
                cursor.execute(st.sql)
            else:
                cursor.execute(st.sql, params)
            if cursor.description is not None:
                fetched += cursor.fetchall()
            # a multi-statement query (MySQL): read every statement's result, in turn
            while getattr(cursor, "nextset", None) is not None and cursor.nextset():
                if cursor.description is not None:
                    fetched += cursor.fetchall()
        finally:
            cursor.close()
    return fetched
