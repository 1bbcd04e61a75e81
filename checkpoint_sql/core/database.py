"""One database, reached through a sync and an async engine, running operations.

An *operation* is a plain function ``op(conn, *args)`` taking a sync SQLAlchemy
`Connection` (or, for the hot path's few, a DBAPI `Link`: see `links.py`).
`Database.run` calls it on the sync engine; `Database.arun` calls the very same
function inside SQLAlchemy's greenlet bridge, so every operation is written once and
the async path never touches a thread pool. No lock of our own serialises callers:
the pool does the sharing.

Connections run in autocommit, and each call is one transaction, of the `Intent` its
caller names: an operation that is a single statement runs bare (the statement is its
own transaction, and costs no BEGIN/COMMIT round trips); any other runs between an
explicit BEGIN and COMMIT (``BEGIN IMMEDIATE`` for SQLite writers), rolled back on
error.

The saver and the companion stores share one `Database`, hence one pool per engine.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from checkpoint_sql.core import engines, group_commit
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.core.links import HeldConnections, Link
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.capabilities import family_of
from checkpoint_sql.dialects.driver_errors import is_missing_table, is_pooled_prepared_statement
from checkpoint_sql.dialects.transactions import Mode, begin_sql
from checkpoint_sql.errors import ConfigurationError, EngineUnreachableError, InvalidArgumentError, SchemaNotReadyError

T = TypeVar("T")
Source = str | URL | Engine | AsyncEngine | None
"""Where a `Database`'s engines come from: a URL (None: ``$CHECKPOINT_SQL_URL`` or the
embedded file), or an engine of the application's."""


class Database:
    """The engines of one database and the transactions operations run in.

    `target` is a URL (or None for `$CHECKPOINT_SQL_URL` / the embedded default), an
    `Engine`, or an `AsyncEngine`; `async_engine` may add the async side to a sync
    `Engine`. Engines passed in are borrowed (never disposed here, and their pool
    settings are theirs); the missing side is created from the same URL on first use,
    and owned.
    """

    def __init__(
        self,
        target: Source = None,
        *,
        async_engine: AsyncEngine | None = None,
        options: engines.EngineOptions | None = None,
    ) -> None:
        self.options = options or engines.EngineOptions()
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._owned: list[Engine | AsyncEngine] = []
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        if isinstance(target, AsyncEngine):
            if async_engine is not None:
                raise ConfigurationError("pass one AsyncEngine, either positionally or as async_engine=")
            self._async = target
        elif isinstance(target, Engine):
            self._sync, self._async = target, async_engine
        else:
            if async_engine is not None:
                raise ConfigurationError("async_engine= goes with a sync Engine, not with a URL")
            self.url = engines.resolve(target)
            engines.driver_pair(self.url)  # refuse an unsupported URL now, not on first use
        if self._sync is not None or self._async is not None:
            self.url = self._check_same_database()
        self.family: Family = family_of(engines.dialect_name_of(self.url))
        self._writes = _sqlite_write_queue(self.url) if self.family == "sqlite" else None
        self._batches = self.family == "mysql"  # our MySQL engines take a transaction as one query
        self._held: HeldConnections | None = None  # our SQLite engine's connections, for the hot path

    def _check_same_database(self) -> URL:
        urls = [e.url for e in (self._sync, self._async) if e is not None]
        bare = {u.set(drivername=engines.dialect_name_of(u)).render_as_string(hide_password=False) for u in urls}
        if len(bare) > 1:
            raise ConfigurationError(
                "the sync and async engines point at different databases: " + " vs ".join(engines.mask(u) for u in urls)
            )
        return urls[0]

    @property
    def masked_url(self) -> str:
        return engines.mask(self.url)

    # --- engines --------------------------------------------------------------------

    @property
    def sync_engine(self) -> Engine:
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    engine = engines.build_engine(self.url, self.options, want_async=False)
                    assert isinstance(engine, Engine)
                    self._owned.append(engine)
                    if self.family == "sqlite":
                        self._held = HeldConnections(engine)
                    self._sync = engine
        return self._sync

    @property
    def async_engine(self) -> AsyncEngine:
        """The async engine. One this object created belongs to the event loop it was
        first used in (its pooled connections do); called from another loop (a second
        `asyncio.run`, say), it is replaced rather than handing out dead connections."""
        loop = asyncio.get_running_loop() if self._in_loop() else None
        if self._async is None or (loop is not None and self._async_loop not in (None, loop) and self._owns_async()):
            with self._lock:
                if self._async is not None and self._owns_async():
                    self._owned.remove(self._async)
                    self._async.sync_engine.dispose(close=False)  # its loop is gone or not ours
                    self._async = None
                if self._async is None:
                    engine = engines.build_engine(self.url, self.options, want_async=True)
                    assert isinstance(engine, AsyncEngine)
                    self._owned.append(engine)
                    self._async, self._async_loop = engine, loop
        return self._async

    def _owns_async(self) -> bool:
        return self._async is not None and self._async in self._owned

    @staticmethod
    def _in_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _borrowed(self, engine: Engine) -> bool:
        return all(engine is not (e.sync_engine if isinstance(e, AsyncEngine) else e) for e in self._owned)

    # --- running operations ---------------------------------------------------------

    def run(self, op: Callable[..., T], *args: Any, intent: Intent = Intent.READ, raw: bool = False) -> T:
        """Run `op(conn, *args)` as one transaction of `intent` on the sync engine.

        `raw` is not about the transaction but about `op`'s signature: it is a hot-path
        operation taking a DBAPI `Link` instead of a `Connection`; on an engine of ours
        it runs straight on a pooled DBAPI connection, with no `Connection` built
        around it.
        """
        if self._writes is not None and intent.writes:
            queued = group_commit.Write(op, args, alone=intent is not Intent.GROUPED_WRITE, raw=raw)
            return self._writes.run(queued, self._commit_batch)  # type: ignore[no-any-return]
        mode = intent.mode(self.family)
        engine = self.sync_engine
        if raw and not self._borrowed(engine):
            return self._on_link(engine, op, args, mode)
        with self._connect() as conn:
            return self._transaction(conn, op, args, mode, raw)

    async def arun(self, op: Callable[..., T], *args: Any, intent: Intent = Intent.READ, raw: bool = False) -> T:
        """Run the same `op(conn, *args)` as one transaction on the async engine.

        PostgreSQL and MySQL: the sync function runs inside one SQLAlchemy greenlet
        (`AsyncConnection.run_sync` for Core operations; for hot ones, the same
        `_on_link` as `run`, on the async engine's pool), so each of its statements is
        awaited on the driver's async I/O without a second copy of the operation.

        SQLite has no asynchronous I/O: aiosqlite runs every call in a thread of its
        own, one hop there and back (through SQLAlchemy's greenlet adapter) per
        checkout, execute, fetch and close. So on SQLite the whole operation runs on the
        sync engine in a worker thread instead: one hop per operation, measured 2.7x
        faster for a read and 5x for a write. A write waits for its turn in the group
        commit queue on a future, not in a thread, so many concurrent writers do not
        exhaust the executor; only the batch's leader takes a thread.
        """
        if self._writes is not None:
            if intent.writes:
                queued = group_commit.Write(op, args, alone=intent is not Intent.GROUPED_WRITE, raw=raw)
                return await self._writes.arun(queued, self._acommit_batch)  # type: ignore[no-any-return]
            return await asyncio.to_thread(self.run, op, *args, intent=intent, raw=raw)
        mode = intent.mode(self.family)
        engine = self.async_engine
        if raw and not self._borrowed(engine.sync_engine):
            return await greenlet_spawn(self._on_link, engine.sync_engine, op, args, mode)
        conn = await self._aconnect()
        try:
            return await conn.run_sync(self._transaction, op, args, mode, raw)
        finally:
            await conn.close()

    def _connect(self) -> Connection:
        try:
            return self.sync_engine.connect()
        except DBAPIError as exc:
            raise self._unreachable(exc) from exc

    async def _aconnect(self) -> AsyncConnection:
        conn = self.async_engine.connect()
        try:
            await conn.start()
        except DBAPIError as exc:
            raise self._unreachable(exc) from exc
        return conn

    def _commit_batch(self, batch: list[group_commit.Write]) -> None:
        engine = self.sync_engine
        if all(write.raw for write in batch) and not self._borrowed(engine):
            self._on_link(engine, group_commit.run_batch, (batch, None), "write")
            return
        with self._connect() as conn:
            self._transaction(conn, group_commit.run_batch, (batch, conn), "write", raw=True)

    async def _acommit_batch(self, batch: list[group_commit.Write]) -> None:
        await asyncio.to_thread(self._commit_batch, batch)

    def _on_link(self, engine: Engine, op: Callable[..., T], args: tuple[Any, ...], mode: Mode | None) -> T:
        """Run a hot operation on a DBAPI connection of `engine`: one we hold (SQLite),
        else one checked out of its pool."""
        try:
            held = self._held
            link = (
                held.link()
                if held is not None and held.engine is engine
                else Link.checkout(engine, batch=self._batches)
            )
        except (DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:  # the pool raises the driver's own
            raise self._unreachable(exc) from exc
        try:
            return self._in_transaction(link, link, op, args, mode)
        finally:
            link.close()

    def _transaction(
        self, conn: Connection, op: Callable[..., T], args: tuple[Any, ...], mode: Mode | None, raw: bool
    ) -> T:
        if self._borrowed(conn.engine):
            conn.execution_options(isolation_level="AUTOCOMMIT")
        link = Link.of(conn)
        return self._in_transaction(link, link if raw else conn, op, args, mode)

    def _in_transaction(
        self,
        link: Link,
        target: Link | Connection,
        op: Callable[..., T],
        args: tuple[Any, ...],
        mode: Mode | None,
    ) -> T:
        """`op(target, *args)` in the transaction `mode` asks for, opened and ended on `link`."""
        try:
            if mode is None:
                return op(target, *args)
            link.begin(begin_sql(self.family, mode))
            try:
                result = op(target, *args)
            except BaseException:
                link.rollback()
                raise
            link.commit()
            return result
        except DBAPIError as exc:
            self._translate(exc)
            raise
        except (OverflowError, UnicodeEncodeError) as exc:  # the driver refused to bind a value
            raise InvalidArgumentError(
                f"a value of this call cannot be sent to {self.masked_url}: {type(exc).__name__}: {exc}"
            ) from exc

    def _unreachable(self, exc: Exception) -> EngineUnreachableError:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        reason = str(cause).strip().splitlines()[0] if cause is not None else type(exc).__name__
        return EngineUnreachableError(f"cannot connect to {self.masked_url}: {reason}")

    def _translate(self, exc: DBAPIError) -> None:
        """Raise the error a user can act on in place of `exc`, if there is one; other
        database errors stay SQLAlchemy's, for retry policies to classify."""
        said = next(iter(str(exc.orig).strip().splitlines()), type(exc.orig).__name__)  # its first line
        if is_missing_table(self.family, exc):
            raise SchemaNotReadyError(
                f"checkpoint_sql tables are missing in {self.masked_url}; call setup() "
                f"(or `await asetup()`) once before use. Driver said: {said}"
            ) from exc
        if is_pooled_prepared_statement(self.family, exc):
            raise ConfigurationError(
                f"a prepared statement went missing between transactions on {self.masked_url}: a transaction "
                "pooler (PgBouncer in transaction mode) is in between; add prepare_threshold=none to the URL "
                f"(or EngineOptions(prepare_threshold=None)). Driver said: {said}"
            ) from exc
        if isinstance(exc, DataError):  # a value of the call that the column refuses: never transient
            raise InvalidArgumentError(f"{self.masked_url} refused a value of this call: {said}") from exc

    # --- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Dispose the engines this object created; borrowed ones are left alone."""
        self._release_held()
        for engine in self._owned:
            if isinstance(engine, Engine):
                engine.dispose()
            else:
                engine.sync_engine.dispose(close=False)
        self._forget_owned()

    async def aclose(self) -> None:
        self._release_held()
        for engine in self._owned:
            if isinstance(engine, AsyncEngine):
                await engine.dispose()
            else:
                engine.dispose()
        self._forget_owned()

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def _forget_owned(self) -> None:
        with self._lock:
            if self._sync in self._owned:
                self._sync = None
            if self._async in self._owned:
                self._async = None
            self._owned.clear()


_SQLITE_QUEUES: dict[str, group_commit.GroupCommit] = {}
_SQLITE_QUEUES_GUARD = threading.Lock()


def _sqlite_write_queue(url: URL) -> group_commit.GroupCommit:
    """The write queue of one SQLite file, shared by every `Database` of this process
    on that file (a saver and the stores, two savers...)."""
    database = url.database or ""
    key = database if "mode" in url.query else os.path.realpath(database)
    with _SQLITE_QUEUES_GUARD:
        return _SQLITE_QUEUES.setdefault(key, group_commit.GroupCommit())
