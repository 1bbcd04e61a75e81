"""`connect()`: one database, one pool per engine, and everything an agent keeps there.

>>> db = checkpoint_sql.connect("postgresql://app@db/app")
>>> db.setup()
>>> graph = builder.compile(checkpointer=db.saver, store=db.store)
>>> db.close()
"""

from __future__ import annotations

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.store.base import IndexConfig, TTLConfig
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core.calls import DatabaseClient
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.stores.sessions import SessionStore
from checkpoint_sql.stores.short_memory import ShortMemoryStore
from checkpoint_sql.stores.store import SQLStore


class Storage(DatabaseClient):
    """The saver and the companion stores of one database, sharing its engines.

    `saver` (`SQLSaver`, LangGraph checkpoints), `store` (`SQLStore`, LangGraph's
    long-term memory), `sessions` (`SessionStore`) and `short_memory`
    (`ShortMemoryStore`) all run on `db`; `setup()` migrates all their tables and
    `close()` disposes the engines once. `serde` goes to the saver, `index` and `ttl`
    to the store, `event_limit` (events kept per session) to the sessions.
    """

    def __init__(
        self,
        target: str | URL | Engine | AsyncEngine | Database | None = None,
        *,
        async_engine: AsyncEngine | None = None,
        engine_options: EngineOptions | None = None,
        table_prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        event_limit: int | None = None,
    ) -> None:
        self._use_database(target, async_engine=async_engine, engine_options=engine_options)
        self.saver = SQLSaver(self.db, serde=serde, table_prefix=table_prefix, schema=schema)
        self.store = SQLStore(self.db, index=index, ttl=ttl, table_prefix=table_prefix, schema=schema)
        self.sessions = SessionStore(self.db, event_limit=event_limit, table_prefix=table_prefix, schema=schema)
        self.short_memory = ShortMemoryStore(self.db, table_prefix=table_prefix, schema=schema)

    def __repr__(self) -> str:
        return f"Storage({self.db.masked_url!r})"

    def setup(self) -> None:
        """Create or migrate the saver's and the stores' tables. Idempotent."""
        self.saver.setup()
        self.store.setup()

    async def asetup(self) -> None:
        await self.saver.asetup()
        await self.store.asetup()

    def close(self) -> None:
        """Stop the store's TTL sweeper and dispose the engines (unless the `Database`
        was passed in, in which case its owner disposes it)."""
        self.store.close()
        super().close()

    async def aclose(self) -> None:
        await self.store.aclose()
        await super().aclose()


connect = Storage
"""``checkpoint_sql.connect(url=None, **options)``: open a database (a URL, None for
``$CHECKPOINT_SQL_URL`` or the embedded SQLite file, an ``Engine``/``AsyncEngine``, or a
`Database`) and get its saver and stores as one `Storage`. Nothing connects until first
use; call `setup()` once to create the tables."""
