"""Factories for the LangGraph Agent Server (``langgraph dev``, self-hosted ``langgraph-api``).

Since langgraph-api 0.7.14 a deployment may name its own checkpointer and store in
``langgraph.json``; the server imports a ``path`` with a ``/`` or ``.py:`` as a file
and anything else as a dotted path, ``package.module.attribute``::

    "checkpointer": {"path": "checkpoint_sql.server.checkpointer"},
    "store": {"path": "checkpoint_sql.server.store"}

Each factory is an async context manager: the server enters it once per event loop
it serves from and exits it at shutdown. The server passes no settings to a custom
checkpointer or store, so both are configured from the environment (`Settings`):
the database URL, retries, the table prefix and schema, the store's vector index and
TTL, and optionally a retention sweeper. Tables are created or migrated on entry
(idempotent, safe when replicas start together).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore, IndexConfig, TTLConfig

from checkpoint_sql.core.engines import URL_ENV_VAR
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.errors import CheckpointSQLError, ConfigurationError
from checkpoint_sql.retry.retrying_saver import RetryingSaver
from checkpoint_sql.saver.retention import parse_duration
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.saver.sweeper import RetentionSweeper
from checkpoint_sql.stores.store import SQLStore

RETRY_ENV_VAR = "CHECKPOINT_SQL_RETRY"
PREFIX_ENV_VAR = "CHECKPOINT_SQL_TABLE_PREFIX"
SCHEMA_ENV_VAR = "CHECKPOINT_SQL_SCHEMA"
INDEX_ENV_VAR = "CHECKPOINT_SQL_STORE_INDEX"
TTL_ENV_VAR = "CHECKPOINT_SQL_STORE_TTL"
KEEP_LAST_ENV_VAR = "CHECKPOINT_SQL_RETAIN_KEEP_LAST"
OLDER_THAN_ENV_VAR = "CHECKPOINT_SQL_RETAIN_OLDER_THAN"
EVERY_ENV_VAR = "CHECKPOINT_SQL_RETAIN_EVERY"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """What the factories read from the environment (unset variables: defaults).

    ``CHECKPOINT_SQL_URL``: the database (default: the embedded SQLite file).
    ``CHECKPOINT_SQL_RETRY``: ``on`` (default) wraps the saver in `RetryingSaver`.
    ``CHECKPOINT_SQL_TABLE_PREFIX`` / ``CHECKPOINT_SQL_SCHEMA``: where the tables are.
    ``CHECKPOINT_SQL_STORE_INDEX``: the store's vector index as JSON, e.g.
    ``{"dims": 1536, "embed": "openai:text-embedding-3-small", "fields": ["text"]}``;
    ``embed`` is a provider string or a file path ``./embed.py:function``.
    ``CHECKPOINT_SQL_STORE_TTL``: the store's TTL config as JSON
    (``{"default_ttl": 1440, "sweep_interval_minutes": 10}``); a sweeper runs when set.
    ``CHECKPOINT_SQL_RETAIN_KEEP_LAST`` / ``CHECKPOINT_SQL_RETAIN_OLDER_THAN``: when
    either is set, the checkpointer runs a `RetentionSweeper` every
    ``CHECKPOINT_SQL_RETAIN_EVERY`` (default ``1h``); replicas take turns.
    """

    url: str | None = None
    retry: bool = True
    table_prefix: str = DEFAULT_PREFIX
    schema: str | None = None
    index: IndexConfig | None = None
    ttl: TTLConfig | None = None
    keep_last: int | None = None
    older_than: timedelta | None = None
    every: timedelta = timedelta(hours=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        index = _json(env, INDEX_ENV_VAR)
        if index is not None and isinstance(index.get("embed"), str) and _is_file_path(index["embed"]):
            index = {**index, "embed": _load_attribute(index["embed"], INDEX_ENV_VAR)}
        keep_last = text(KEEP_LAST_ENV_VAR)
        if keep_last is not None and not keep_last.isdigit():
            raise ConfigurationError(f"${KEEP_LAST_ENV_VAR} must be a whole number, not {keep_last!r}")
        return cls(
            url=text(URL_ENV_VAR),
            retry=_flag(env, RETRY_ENV_VAR, default=True),
            table_prefix=text(PREFIX_ENV_VAR) or DEFAULT_PREFIX,
            schema=text(SCHEMA_ENV_VAR),
            index=cast(IndexConfig | None, index),
            ttl=cast(TTLConfig | None, _json(env, TTL_ENV_VAR)),
            keep_last=None if keep_last is None else int(keep_last),
            older_than=_duration(env, OLDER_THAN_ENV_VAR),
            every=_duration(env, EVERY_ENV_VAR) or timedelta(hours=1),
        )

    @property
    def retains(self) -> bool:
        return self.keep_last is not None or self.older_than is not None


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[str]]:
    """An `SQLSaver` on ``$CHECKPOINT_SQL_URL``, set up, retried unless
    ``CHECKPOINT_SQL_RETRY=off``, with a retention sweeper if one is configured."""
    settings = Settings.from_env()
    saver = SQLSaver(settings.url, table_prefix=settings.table_prefix, schema=settings.schema)
    try:
        await saver.asetup()
        sweeper = None
        if settings.retains:
            sweeper = RetentionSweeper(
                saver, every=settings.every, keep_last=settings.keep_last, older_than=settings.older_than
            )
            await sweeper.astart()
        try:
            yield RetryingSaver(saver) if settings.retry else saver
        finally:
            if sweeper is not None:
                await sweeper.astop()
    finally:
        await saver.aclose()


@contextlib.asynccontextmanager
async def store() -> AsyncIterator[BaseStore]:
    """An `SQLStore` on ``$CHECKPOINT_SQL_URL``, set up, with the vector index and
    TTL of ``$CHECKPOINT_SQL_STORE_INDEX`` / ``$CHECKPOINT_SQL_STORE_TTL`` (the server
    does not pass its own ``store`` settings to a custom store)."""
    settings = Settings.from_env()
    memory = SQLStore(
        settings.url,
        index=settings.index,
        ttl=settings.ttl,
        table_prefix=settings.table_prefix,
        schema=settings.schema,
    )
    try:
        await memory.asetup()
        if settings.ttl is not None:
            await memory.astart_ttl_sweeper()
        yield memory
    finally:
        await memory.aclose()


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise ConfigurationError(f"${name} must be one of {', '.join(_TRUE + _FALSE)}, not {raw!r}")


def _json(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"${name} is not valid JSON ({exc}): {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"${name} must be a JSON object, not {raw[:80]!r}")
    return value


def _duration(env: Mapping[str, str], name: str) -> timedelta | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_duration(raw)
    except CheckpointSQLError as exc:
        raise ConfigurationError(f"${name}: {exc}") from None


def _is_file_path(text: str) -> bool:
    """The server's own rule: a ``/`` or ``.py:`` names a file, anything else is
    a provider string (``openai:text-embedding-3-small``)."""
    return "/" in text or ".py:" in text


def _load_attribute(spec: str, name: str) -> Any:
    """``path/to/file.py:attribute``, as the server loads graphs."""
    path, _, attribute = spec.rpartition(":")
    location = Path(path)
    module_spec = importlib.util.spec_from_file_location(f"checkpoint_sql_embed_{location.stem}", location)
    if not path or module_spec is None or module_spec.loader is None or not location.is_file():
        raise ConfigurationError(f"${name}: embed {spec!r} names no Python file (expected ./file.py:function)")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"${name}: {path} has no attribute {attribute!r}") from None
