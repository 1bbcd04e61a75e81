"""Statements built with SQLAlchemy Core, compiled once per dialect, run on the DBAPI cursor.

The hot path (get, list, put, put_writes) is a handful of fixed statements. Running
them through `Connection.execute` costs more than the statements themselves on a
local server: cache lookups and parameter processing per call, and a logical
transaction that SQLAlchemy ends with a ROLLBACK, which PyMySQL sends over the wire
even in autocommit mode. So the statements are still written in SQLAlchemy Core
(`statements.py`), compiled once for each dialect, and executed on the connection's
DBAPI cursor; the parameters are prepared by `codec.py` in the driver's own types.

Driver errors are wrapped into SQLAlchemy's exception classes, and a connection the
dialect recognises as dropped is invalidated, exactly as `Connection.execute` does,
so callers and retry policies see one kind of error whichever path ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None
    """Bind names in placeholder order for positional paramstyles; None for named ones."""
    defaults: dict[str, Any]
    """Values the statement carries itself (e.g. a LIMIT written as a literal)."""

    def bind(self, params: Params) -> Sequence[Any] | Mapping[str, Any]:
        if self.defaults:
            params = {**self.defaults, **params}
        if self.order is None:
            return params
        return tuple(params[name] for name in self.order)


class Prepared:
    """One statement and its compiled form for each dialect it has met."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[int, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(id(dialect))
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            defaults = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required and bind.effective_value is not None
            }
            found = self._compiled[id(dialect)] = _Compiled(compiled.string, order, defaults)
        return found

    def rows(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        """Run the statement and return every row."""
        compiled = self.compiled(conn.dialect)
        return run(conn, compiled.sql, compiled.bind(params), fetch=True)

    def execute(self, conn: Connection, params: Params) -> None:
        compiled = self.compiled(conn.dialect)
        run(conn, compiled.sql, compiled.bind(params), fetch=False)


def run(conn: Connection, sql: str, params: Any = None, *, fetch: bool = False) -> list[tuple[Any, ...]]:
    """Execute raw SQL on `conn`'s DBAPI connection (in the sync or greenlet-bridged
    async driver alike), wrapping driver errors as `Connection.execute` would."""
    dialect = conn.dialect
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None, "the connection was closed"
    cursor = dbapi_connection.cursor()
    try:
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()] if fetch else []
    except dialect.loaded_dbapi.Error as exc:
        invalidated = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if invalidated:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=dialect
        ) from exc
    finally:
        if not conn.invalidated:
            cursor.close()
