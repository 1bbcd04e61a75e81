"""What the tables of every component (the saver, the stores) share: the name prefix
that lets them sit beside the host application's own tables, and the lease table
(`checkpoint_sql.core.leases`) each migration history creates for its own sweeps."""

from __future__ import annotations

import re

import sqlalchemy as sa

from checkpoint_sql.dialects.columns import ascii_key, unicode_key
from checkpoint_sql.errors import ConfigurationError

DEFAULT_PREFIX = "cpsql_"

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,29}")


def check_prefix(prefix: str) -> str:
    """A table prefix must be a plain lower-case identifier (it is spliced into DDL)."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            f"table_prefix must match {_PREFIX.pattern!r} (lower-case letters, digits, "
            f"underscores; at most 30 characters), not {prefix!r}"
        )
    return prefix


LEASE_NAME_MAX = 64
LEASE_HOLDER_MAX = 255


def lease_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """A lease table (`checkpoint_sql.core.leases`): one row per kind of job, naming who
    holds it and until when (microseconds since the epoch, on the server's clock).
    The saver's and the stores' migration histories each create one."""
    return sa.Table(
        name,
        metadata,
        sa.Column("name", ascii_key(LEASE_NAME_MAX), primary_key=True),
        sa.Column("holder", unicode_key(LEASE_HOLDER_MAX), nullable=False),
        sa.Column("acquired_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
