"""checkpoint_sql: one LangGraph checkpoint saver for SQLite, PostgreSQL and MySQL/MariaDB,
and companion stores (long-term memory, sessions, short-lived memory) on the same engine."""

from checkpoint_sql.core.database import Database
from checkpoint_sql.core.engines import URL_ENV_VAR, EngineOptions, default_sqlite_path
from checkpoint_sql.core.leases import Lease
from checkpoint_sql.errors import (
    CheckpointSQLError,
    ConfigurationError,
    EngineUnreachableError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    InvalidNamespaceError,
    MemoryNotFoundError,
    MissingPartsError,
    ReadOnlyError,
    RetryExhaustedError,
    SchemaNotReadyError,
    SerializationError,
    SessionConflictError,
    SessionExistsError,
    SessionNotFoundError,
    ThreadExistsError,
    ThreadNotFoundError,
    UnknownCheckpointError,
)
from checkpoint_sql.retry.policy import RetryPolicy
from checkpoint_sql.retry.retrying_saver import RetryingSaver
from checkpoint_sql.retry.transient import is_transient
from checkpoint_sql.saver.retention import EXEMPT, NamespaceOutcome, RetentionPolicy, RetentionReport
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.saver.sweeper import RetentionSweeper
from checkpoint_sql.storage import Storage, connect
from checkpoint_sql.stores import (
    MemoryEntry,
    PurgeResult,
    Session,
    SessionEvent,
    SessionStore,
    SessionSummary,
    ShortMemoryStore,
    SQLStore,
    Turn,
    TurnUsage,
)

__all__ = [
    "EXEMPT",
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
    "Lease",
    "MemoryEntry",
    "MemoryNotFoundError",
    "MissingPartsError",
    "NamespaceOutcome",
    "PurgeResult",
    "ReadOnlyError",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionSweeper",
    "RetryExhaustedError",
    "RetryPolicy",
    "RetryingSaver",
    "SQLSaver",
    "SQLStore",
    "SchemaNotReadyError",
    "SerializationError",
    "Session",
    "SessionConflictError",
    "SessionEvent",
    "SessionExistsError",
    "SessionNotFoundError",
    "SessionStore",
    "SessionSummary",
    "ShortMemoryStore",
    "Storage",
    "ThreadExistsError",
    "ThreadNotFoundError",
    "Turn",
    "TurnUsage",
    "UnknownCheckpointError",
    "connect",
    "default_sqlite_path",
    "is_transient",
]
