"""What the three companion stores share: the database they run on, their tables, how
one call becomes one transaction (sync or async), setup and lifetime.

A store method describes its work as a `Call` (the operation, its arguments, what to
make of its result) after validating its input, so a rejected call never reaches the
database; `_run` and `_arun` execute the same `Call` on the sync or the async engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from typing_extensions import Self

from checkpoint_sql import migrate
from checkpoint_sql.database import Database
from checkpoint_sql.engines import EngineOptions
from checkpoint_sql.stores.tables import StoreTables, store_tables

R = TypeVar("R")
T = TypeVar("T")

Target = str | URL | Engine | AsyncEngine | Database | None


@dataclass(slots=True)
class Call(Generic[R, T]):
    """One transaction of one operation, and what to make of its result."""

    op: Callable[..., R]
    args: tuple[Any, ...]
    finish: Callable[[R], T]
    write: bool = False


def same(value: T) -> T:
    return value


class Component:
    """Base of the companion stores: a `Database` (owned when built from a URL or
    engines, shared when given one) and the tables under one prefix and schema."""

    def __init__(
        self,
        target: Target = None,
        *,
        async_engine: AsyncEngine | None = None,
        table_prefix: str,
        schema: str | None,
        engine_options: EngineOptions | None,
    ) -> None:
        self._owns_db = not isinstance(target, Database)
        self.db = (
            target
            if isinstance(target, Database)
            else Database(target, async_engine=async_engine, options=engine_options)
        )
        self.tables: StoreTables = store_tables(table_prefix, schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.masked_url!r}, table_prefix={self.tables.prefix!r})"

    # --- running calls ------------------------------------------------------------------

    def _run(self, call: Call[Any, T]) -> T:
        return call.finish(self.db.run(call.op, *call.args, write=call.write))

    async def _arun(self, call: Call[Any, T]) -> T:
        return call.finish(await self.db.arun(call.op, *call.args, write=call.write))

    # --- setup ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the companion stores' tables (all of them: they share one
        migration history). Idempotent; safe from many processes at once. Never
        touches the saver's tables."""
        self._run(self._setup())

    async def asetup(self) -> None:
        await self._arun(self._setup())

    def _setup(self) -> Call[Any, None]:
        return Call(migrate.upgrade, (self.tables.migrations, self.db.family), lambda _: None, write=True)

    # --- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Dispose the engines this store created (engines or a `Database` passed in are left open)."""
        if self._owns_db:
            self.db.close()

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
