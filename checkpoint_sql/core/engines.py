"""How checkpoint_sql connects: URLs, drivers, and the engines built from them.

One URL names one database; the saver reaches it through two engines, a sync one and
an async one, because LangGraph calls both `put` and `aput` on the same checkpointer.
Users write plain scheme names (`sqlite`, `postgresql`, `mysql`, `mariadb`); the
drivers, pool settings and per-connection settings of each engine are chosen here and
nowhere else (what each driver needs is `checkpoint_sql.dialects.connections`).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpoint_sql.core import cluster
from checkpoint_sql.dialects.capabilities import family_of
from checkpoint_sql.dialects.connections import DRIVERS, connect_args, sqlite_pragmas
from checkpoint_sql.errors import ConfigurationError

URL_ENV_VAR = "CHECKPOINT_SQL_URL"
"""Environment variable read when no URL is given."""

DialectName = str
"""The SQLAlchemy dialect a URL names: "sqlite", "postgresql", "mysql" or "mariadb" (its
`Family` counts MariaDB as "mysql")."""

_ALIASES = {"postgres": "postgresql"}

_PASSWORD_IN_TEXT = re.compile(r"(://[^:/@]*:)[^@]*@")


def default_sqlite_path() -> Path:
    """Where the embedded database lives when no URL is given: the per-user data
    directory (e.g. ``~/.local/share/checkpoint_sql/checkpoints.db`` on Linux), so
    the CLI run from any directory finds the same checkpoints as the application."""
    return platformdirs.user_data_path("checkpoint_sql") / "checkpoints.db"


def resolve(url: str | URL | None) -> URL:
    """The URL to use: the argument, else `$CHECKPOINT_SQL_URL`, else the embedded default."""
    if url is None:
        url = os.environ.get(URL_ENV_VAR) or None
    if url is None:
        path = default_sqlite_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite", database=str(path))
    if not isinstance(url, URL):
        url = _parse(url)
    if dialect_name_of(url) == "sqlite":
        url = _shared_memory(url)
    return url


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"cannot parse database URL {mask(url)!r}: {exc}. Expected e.g. "
            "'sqlite:///checkpoints.db', 'postgresql://user@host/db' or 'mysql://user@host/db'."
        ) from None


def dialect_name_of(url: URL) -> DialectName:
    """The dialect a URL names, with aliases (``postgres``) folded in; rejects unsupported ones."""
    name = _ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if name not in DRIVERS:
        raise ConfigurationError(
            f"unsupported database {name!r} in URL {mask(url)!r}; supported: {', '.join(sorted(DRIVERS))}"
        )
    return name


def driver_pair(url: URL) -> tuple[URL, URL]:
    """The sync and async URLs for the database `url` names.

    A driver written in the URL is honoured only if it is the one this package
    supports on that side; anything else is refused with the supported names, because
    the connect arguments, SQLite pragmas and error classification of
    `checkpoint_sql.dialects` are written for these drivers.
    """
    dialect = dialect_name_of(url)
    sync_driver, async_driver = DRIVERS[dialect]
    given = url.get_driver_name() if "+" in url.drivername else None
    if given is not None and given not in (sync_driver, async_driver):
        raise ConfigurationError(
            f"driver {given!r} is not supported for {dialect} (URL {mask(url)!r}); use "
            f"'{dialect}://' or '{dialect}+{sync_driver}://' / '{dialect}+{async_driver}://'"
        )
    return url.set(drivername=f"{dialect}+{sync_driver}"), url.set(drivername=f"{dialect}+{async_driver}")


def _shared_memory(url: URL) -> URL:
    """An in-memory SQLite URL turned into a named, shared-cache one (done once, when
    the URL is resolved, so both engines get the same name).

    A plain ``:memory:`` database exists once per connection, so the sync engine,
    the async engine and every pooled connection would each see an empty database.
    """
    if url.database not in (None, "", ":memory:"):
        return url
    return url.set(
        database=f"file:checkpoint_sql_{uuid.uuid4().hex}",
        query={**url.query, "mode": "memory", "cache": "shared", "uri": "true"},
    )


def is_sqlite_memory(url: URL) -> bool:
    return dialect_name_of(url) == "sqlite" and url.query.get("mode") == "memory"


def mask(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``: the only form in
    which a URL may appear in a message or a log line."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD_IN_TEXT.sub(r"\1***@", url)


@dataclass(frozen=True)
class EngineOptions:
    """How the engines this package creates itself are configured.

    Ignored for engines passed in by the caller, which are used as they are.
    """

    sqlite_synchronous: str = "FULL"
    """``FULL`` (default, the durability of the official SQLite saver: a committed
    checkpoint survives power loss) or ``NORMAL`` (WAL-safe against crashes of the
    process, may lose the last commits on power loss; faster)."""
    busy_timeout: float = 30.0
    """Seconds a SQLite writer waits for the write lock before failing as busy."""
    prepare_threshold: int | None = 5
    """psycopg's server-side prepare threshold; ``None`` disables prepared statements,
    which PgBouncer in transaction mode requires. ``prepare_threshold=none`` in the URL
    overrides it (see `checkpoint_sql.core.cluster`)."""
    pool_size: int = 5
    max_overflow: int = 10
    pool_recycle: int = 3600
    """Seconds after which a pooled PostgreSQL/MySQL connection is replaced, before a
    server or proxy idle timeout closes it under us."""
    ping_after_idle: float | None = 1.0
    """A pooled PostgreSQL/MySQL connection idle this many seconds (or older than a
    disconnect seen on the pool) is pinged before reuse; 0 pings at every checkout
    (SQLAlchemy's ``pool_pre_ping``), None never."""
    galera_sync_wait: int = 1
    """``wsrep_sync_wait`` bits each session on a Galera node adds: 1 (default) makes a
    read wait until the node has applied every transaction committed anywhere in the
    cluster before it; 0 leaves the server's setting."""
    echo: bool = False

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigurationError(
                f"sqlite_synchronous must be 'FULL', 'NORMAL' or 'EXTRA', not {self.sqlite_synchronous!r}"
            )
        if self.busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be >= 0 seconds, not {self.busy_timeout}")


def build_engine(url: URL, options: EngineOptions, *, want_async: bool) -> Engine | AsyncEngine:
    """The sync (`want_async=False`) or async engine for `url`, configured for this package.

    Connections run in driver-level autocommit: `Database` opens a transaction itself
    when an operation has more than one statement, so a single-statement operation
    costs no BEGIN/COMMIT round trips, and the pool has nothing to roll back on return.
    SQLite gets WAL and its `synchronous` level; PostgreSQL the psycopg prepare
    threshold; MySQL READ COMMITTED sessions (fewer gap locks, fewer deadlocks) and
    multi-statement queries.
    """
    dialect = dialect_name_of(url)
    hosts: list[cluster.HostPort] = []
    if dialect in ("mysql", "mariadb"):
        url, hosts = cluster.listed_hosts(url)
    prepare_threshold = options.prepare_threshold
    if dialect == "postgresql":
        url, prepare_threshold = cluster.prepare_threshold(url, prepare_threshold)
    sync_url, async_url = driver_pair(url)
    kwargs: dict[str, Any] = {
        "echo": options.echo,
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
        "connect_args": connect_args(
            family_of(dialect), busy_timeout=options.busy_timeout, prepare_threshold=prepare_threshold
        ),
    }
    if dialect == "sqlite":
        if is_sqlite_memory(sync_url):
            # A shared-cache memory database lives while one connection is open: keep a
            # pool of them rather than SQLAlchemy's one-connection memory default.
            kwargs["poolclass"] = sa.pool.AsyncAdaptedQueuePool if want_async else sa.pool.QueuePool
    else:
        # LIFO: a busy pool keeps reusing its warm connections, so they skip the idle
        # ping; connections left unused age out instead of being rotated through.
        kwargs.update(
            pool_size=options.pool_size,
            max_overflow=options.max_overflow,
            pool_recycle=options.pool_recycle,
            pool_use_lifo=True,
        )
    engine: Engine | AsyncEngine
    if want_async:
        engine = create_async_engine(async_url, **kwargs)
        sync_side = engine.sync_engine
    else:
        engine = sync_side = sa.create_engine(sync_url, **kwargs)
    if dialect == "sqlite":
        sqlite_pragmas(sync_side, wal=not is_sqlite_memory(sync_url), synchronous=options.sqlite_synchronous)
    elif options.ping_after_idle is not None:
        _ping_when_stale(sync_side, options.ping_after_idle)
    if dialect in ("mysql", "mariadb"):
        cluster.connect_to_ready_node(sync_side, hosts, sync_wait=options.galera_sync_wait)
    return engine


def _ping_when_stale(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled server connection before reuse when it may have died: it sat
    idle `idle_seconds` or more (servers, proxies and NATs drop idle connections), or
    it predates a disconnect seen on any connection of this engine (the server went
    away, so its siblings are likely dead too). A dead one is replaced transparently.

    A connection in steady use skips the ping, so the hot path stays one round trip
    per statement; a connection killed in between fails its statement, which a retry
    policy repeats on a fresh one.
    """
    last_disconnect = [0.0]

    @sa.event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["cpsql_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("cpsql_idle_since")
        if since is None or (time.monotonic() - since < idle_seconds and since > last_disconnect[0]):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            last_disconnect[0] = time.monotonic()
            raise sa.exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc

    @sa.event.listens_for(engine, "invalidate")
    def _note_disconnect(_dbapi_connection: Any, _record: Any, _exception: Any) -> None:
        last_disconnect[0] = time.monotonic()
