"""What the three companion stores share: the database they run on, their tables and
their setup.

A store method describes its work as a `Call` (`checkpoint_sql.core.calls`) after validating its input,
so a rejected call never reaches the database; `_run` and `_arun` execute the same
`Call` on the sync or the async engine.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core import migrate
from checkpoint_sql.core.calls import Call, DatabaseClient, Job, Target, same
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.stores.tables import StoreTables, store_tables

__all__ = ["Call", "Component", "Intent", "Job", "Target", "same"]


class Component(DatabaseClient):
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
        self._use_database(target, async_engine=async_engine, engine_options=engine_options)
        self.tables: StoreTables = store_tables(table_prefix, schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.masked_url!r}, table_prefix={self.tables.prefix!r})"

    # --- setup ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the companion stores' tables (all of them: they share one
        migration history). Idempotent; safe from many processes at once. Never
        touches the saver's tables."""
        self._run(self._setup())

    async def asetup(self) -> None:
        await self._arun(self._setup())

    def _setup(self) -> Call[Any, None]:
        return Call(migrate.upgrade, (self.tables.migrations, self.db.family), lambda _: None, intent=Intent.WRITE)
