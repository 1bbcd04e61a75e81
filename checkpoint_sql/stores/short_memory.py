"""`ShortMemoryStore`: short-lived JSON values by (memory type, key), each with a TTL.

One table serves many small subsystems (a reaction ledger, cooldowns, pending
confirmations), kept apart by their memory type, instead of one table or one in-process
dict each; entries survive restarts and are shared by every process on the database.
An expired entry is never returned, even before `cleanup()` deletes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.statements import upsert
from checkpoint_sql.stores.checks import Clock, json_value, key_of_parts, seconds_arg, text_arg, utc_now
from checkpoint_sql.stores.component import Call, Component, Intent, Target, same
from checkpoint_sql.stores.tables import StoreTables

_MISSING = object()


def _alive(table: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    return table.c.expires_at > now


def _get(conn: Connection, tables: StoreTables, entry_id: bytes, now: datetime) -> Any:
    table = tables.short_memory
    row = conn.execute(sa.select(table.c.value).where(table.c.entry_id == entry_id, _alive(table, now))).first()
    return _MISSING if row is None else row.value


def _set(conn: Connection, tables: StoreTables, family: Family, row: dict[str, Any]) -> None:
    conn.execute(upsert(family, tables.short_memory, ["value", "expires_at"]), row)


def _delete(conn: Connection, tables: StoreTables, entry_id: bytes) -> bool:
    table = tables.short_memory
    return bool(conn.execute(sa.delete(table).where(table.c.entry_id == entry_id)).rowcount)


def _count(conn: Connection, tables: StoreTables, type_key: bytes, now: datetime) -> int:
    table = tables.short_memory
    query = sa.select(sa.func.count()).where(table.c.type_key == type_key, _alive(table, now))
    return int(conn.execute(query).scalar_one())


def _cleanup(conn: Connection, tables: StoreTables, now: datetime) -> int:
    table = tables.short_memory
    return int(conn.execute(sa.delete(table).where(table.c.expires_at <= now)).rowcount)


class ShortMemoryStore(Component):
    """Short-lived JSON values by (memory type, key), sync and async.

    Args:
        target: a database URL, None (``$CHECKPOINT_SQL_URL`` or the embedded SQLite
            file), an ``Engine`` / ``AsyncEngine``, or a shared `Database`.
        async_engine, table_prefix, schema, engine_options: as for `SQLSaver`.
        clock: where the time comes from; for tests.

    Call `setup()` once to create the tables (it creates all the companion stores' tables).
    """

    def __init__(
        self,
        target: Target = None,
        *,
        async_engine: AsyncEngine | None = None,
        table_prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        engine_options: EngineOptions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            target, async_engine=async_engine, table_prefix=table_prefix, schema=schema, engine_options=engine_options
        )
        self._clock = clock

    @classmethod
    def from_conn_string(cls, url: str | URL | None = None, **kwargs: Any) -> ShortMemoryStore:
        """A store that owns its engines; use it as ``with`` or ``async with``."""
        return cls(url, **kwargs)

    def get(self, memory_type: str, key: str, default: Any = None) -> Any:
        """The value stored under (memory_type, key), or `default` if there is none or
        it has expired. Rejects a type or key that is not a non-empty string."""
        return self._run(self._get(memory_type, key, default))

    async def aget(self, memory_type: str, key: str, default: Any = None) -> Any:
        return await self._arun(self._get(memory_type, key, default))

    def _get(self, memory_type: str, key: str, default: Any) -> Call[Any, Any]:
        entry_id = self._entry(memory_type, key)
        return Call(_get, (self.tables, entry_id, self._clock()), lambda v: default if v is _MISSING else v)

    def set(self, memory_type: str, key: str, value: Any, ttl: float | timedelta) -> None:
        """Store `value` (any JSON value) for `ttl` (seconds or a timedelta), replacing
        what was there. Rejects non-JSON values (`SerializationError`) and a TTL that is
        not positive (`InvalidArgumentError`); nothing is written then."""
        self._run(self._set(memory_type, key, value, ttl))

    async def aset(self, memory_type: str, key: str, value: Any, ttl: float | timedelta) -> None:
        await self._arun(self._set(memory_type, key, value, ttl))

    def _set(self, memory_type: str, key: str, value: Any, ttl: float | timedelta) -> Call[None, None]:
        entry_id = self._entry(memory_type, key)
        row = {
            "entry_id": entry_id,
            "type_key": key_of_parts(memory_type),
            "memory_type": memory_type,
            "key": key,
            "value": json_value(value, f"short memory value for ({memory_type!r}, {key!r})"),
            "expires_at": self._clock() + timedelta(seconds=seconds_arg(ttl, "ttl")),
        }
        return Call(_set, (self.tables, self.db.family, row), same, intent=Intent.WRITE)

    def delete(self, memory_type: str, key: str) -> bool:
        """Delete the entry; whether there was one (expired or not)."""
        return self._run(self._delete(memory_type, key))

    async def adelete(self, memory_type: str, key: str) -> bool:
        return await self._arun(self._delete(memory_type, key))

    def _delete(self, memory_type: str, key: str) -> Call[bool, bool]:
        return Call(_delete, (self.tables, self._entry(memory_type, key)), same, intent=Intent.WRITE)

    def count(self, memory_type: str) -> int:
        """How many live (unexpired) entries `memory_type` has."""
        return self._run(self._count(memory_type))

    async def acount(self, memory_type: str) -> int:
        return await self._arun(self._count(memory_type))

    def _count(self, memory_type: str) -> Call[int, int]:
        type_key = key_of_parts(text_arg(memory_type, "memory_type"))
        return Call(_count, (self.tables, type_key, self._clock()), same)

    def cleanup(self) -> int:
        """Delete every expired entry, of all memory types; how many. Run it now and
        then (expired entries are already invisible; this reclaims their space)."""
        return self._run(self._cleanup())

    async def acleanup(self) -> int:
        return await self._arun(self._cleanup())

    def _cleanup(self) -> Call[int, int]:
        return Call(_cleanup, (self.tables, self._clock()), same, intent=Intent.WRITE)

    @staticmethod
    def _entry(memory_type: str, key: str) -> bytes:
        return key_of_parts(text_arg(memory_type, "memory_type"), text_arg(key, "key"))
