"""The exceptions checkpoint_sql raises on purpose.

Every error a caller can act on derives from `CheckpointSQLError`, and also from the
built-in exception a Python programmer would reach for first (`ValueError`,
`LookupError`, `ConnectionError`, ...), so existing `except ValueError:` blocks keep
working. Messages name the thread, checkpoint or setting at fault and never carry a
password: URLs are always rendered through `engines.mask`.

Database errors that are not the caller's fault (a dropped connection, a deadlock)
are left as SQLAlchemy's own exceptions, so a retry policy can classify them.
"""

from __future__ import annotations

from langgraph.store.base import InvalidNamespaceError as _LangGraphInvalidNamespaceError


class CheckpointSQLError(Exception):
    """Base class of every error raised on purpose by checkpoint_sql."""


class InvalidConfigError(CheckpointSQLError, ValueError):
    """A `RunnableConfig` (or an argument standing for one) cannot address a checkpoint:
    no `thread_id`, an id of the wrong type, empty, too long, or with a NUL byte."""


class InvalidArgumentError(CheckpointSQLError, ValueError):
    """An argument other than a config is out of range or of the wrong type."""


class InvalidFilterError(InvalidArgumentError):
    """A `list(filter=...)` key or value cannot be matched safely in SQL."""


class SerializationError(CheckpointSQLError, TypeError):
    """A channel value, write or metadata entry cannot be serialized; nothing was written."""


class UnknownCheckpointError(CheckpointSQLError, LookupError):
    """An operation needs a checkpoint that the config does not name or the database lacks."""


class ThreadNotFoundError(CheckpointSQLError, LookupError):
    """An operation needs an existing thread (for instance the source of `copy_thread`)."""


class ThreadExistsError(CheckpointSQLError, ValueError):
    """The target thread of a copy already holds checkpoints; copying would merge two lineages."""


class ConfigurationError(CheckpointSQLError, ValueError):
    """The saver was built with an unusable URL, engine or option."""


class EngineUnreachableError(CheckpointSQLError, ConnectionError):
    """The database server could not be reached (connection refused, bad credentials,
    unknown database). The masked URL is in the message; the driver error is chained."""


class SchemaNotReadyError(CheckpointSQLError, RuntimeError):
    """The tables do not exist yet: `setup()` / `asetup()` has not been run on this database."""


class MissingPartsError(CheckpointSQLError, RuntimeError):
    """Elements of a stored list are missing: something deleted rows of the parts
    table that a checkpoint still points at (the saver itself deletes a part only
    when no checkpoint of its namespace reaches it)."""


class RetryExhaustedError(CheckpointSQLError, RuntimeError):
    """A transient database fault outlasted the retry budget. The message says which
    operation gave up after how many attempts; the last fault is chained as the cause."""

    def __init__(self, message: str, *, operation: str, attempts: int) -> None:
        super().__init__(message)
        self.operation = operation
        self.attempts = attempts


# --- companion stores ------------------------------------------------------------------


class InvalidNamespaceError(InvalidArgumentError, _LangGraphInvalidNamespaceError):
    """A store namespace or one of its labels cannot be used (empty, not a string, a
    period or a control separator in a label, ``"langgraph"`` as the root of a write).
    It is also LangGraph's own `InvalidNamespaceError`, so code written against
    LangGraph's stores catches it unchanged."""


class SessionExistsError(CheckpointSQLError, ValueError):
    """`create_session` was given the id of a session that already exists."""


class SessionNotFoundError(CheckpointSQLError, LookupError):
    """The session an operation names does not exist (or was deleted meanwhile)."""


class SessionConflictError(CheckpointSQLError, RuntimeError):
    """Another writer appended to the session since this copy was read: the event was
    not stored. Re-read the session (`get_session`) and append again.

    `expected_seq` is the sequence number this copy knew, `actual_seq` the stored one.
    """

    def __init__(self, message: str, *, expected_seq: int, actual_seq: int) -> None:
        super().__init__(message)
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class MemoryNotFoundError(CheckpointSQLError, LookupError):
    """`update_memory` / `delete_memory` named a memory that does not exist."""


class ReadOnlyError(CheckpointSQLError, PermissionError):
    """A write (or `setup()`) was asked of a store opened with ``read_only=True``."""
