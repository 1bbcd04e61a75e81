"""checkpoint_sql: one LangGraph checkpoint saver for SQLite, PostgreSQL and MySQL/MariaDB,
and companion stores on the same engine."""

from checkpoint_sql.database import Database
from checkpoint_sql.engines import URL_ENV_VAR, EngineOptions, default_sqlite_path
from checkpoint_sql.errors import (
    CheckpointSQLError,
    ConfigurationError,
    EngineUnreachableError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    InvalidNamespaceError,
    MemoryNotFoundError,
    SchemaNotReadyError,
    SerializationError,
    ThreadExistsError,
    ThreadNotFoundError,
    UnknownCheckpointError,
)
from checkpoint_sql.saver import SQLSaver
from checkpoint_sql.stores import MemoryEntry, SQLStore

__all__ = [
    "URL_ENV_VAR",
    "CheckpointSQLError",
    "ConfigurationError",
    "Database",
    "EngineOptions",
    "EngineUnreachableError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidFilterError",
    "InvalidNamespaceError",
    "MemoryEntry",
    "MemoryNotFoundError",
    "SQLSaver",
    "SQLStore",
    "SchemaNotReadyError",
    "SerializationError",
    "ThreadExistsError",
    "ThreadNotFoundError",
    "UnknownCheckpointError",
    "default_sqlite_path",
]
