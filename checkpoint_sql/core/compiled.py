"""Statements built with SQLAlchemy Core, compiled once per dialect, run on a DBAPI `Link`.

Named "compiled", not "prepared": a server-side prepared statement (psycopg's
``prepare_threshold``, `dialects.connections`) is another thing, set per connection.

The hot path (get, list, put, put_writes) is a handful of fixed statements. Running
them through `Connection.execute` costs more than the statements themselves on a
local server: cache lookups and parameter processing per call, and a logical
transaction that SQLAlchemy ends with a ROLLBACK, which PyMySQL sends over the wire
even in autocommit mode. So the statements are still written in SQLAlchemy Core
(`saver/statements.py`), compiled once for each dialect, and executed on the connection's
DBAPI cursor (`links.py`); the parameters are built by `saver/codec.py` in the driver's
own types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from checkpoint_sql.core.links import Link

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _DialectForm:
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
        return tuple(map(params.__getitem__, self.order))


class CompiledStatement:
    """One statement and its compiled form for each dialect it has met."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[int, _DialectForm] = {}

    def compiled(self, dialect: Dialect) -> _DialectForm:
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
            found = self._compiled[id(dialect)] = _DialectForm(compiled.string, order, defaults)
        return found

    def rows(self, link: Link, params: Params) -> list[tuple[Any, ...]]:
        """Run the statement and return every row."""
        compiled = self.compiled(link.dialect)
        return link.rows(compiled.sql, compiled.bind(params))

    def execute(self, link: Link, params: Params) -> None:
        compiled = self.compiled(link.dialect)
        link.execute(compiled.sql, compiled.bind(params))
