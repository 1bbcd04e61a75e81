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
