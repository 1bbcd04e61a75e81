"""Bringing a database's tables to the current schema with the bundled Alembic revisions.

`upgrade` is an operation (a function of one sync `Connection`), so `setup()` and
`asetup()` run the same code. It is idempotent and safe when many processes start at
once: it takes a per-prefix migration lock first (`dialects.migration_lock`), then
reads the version, and only the first process to get the lock migrates. No statement
needs to run outside a transaction (no ``CREATE INDEX CONCURRENTLY``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from checkpoint_sql import dialects
from checkpoint_sql.schema import SaverTables

_LOCATION = str(Path(__file__).parent / "migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", _LOCATION)
    return config


@cache
def head() -> str:
    """The newest bundled revision."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection, tables: SaverTables) -> str | None:
    """The revision the database is at, or None before the first `setup()`."""
    context = MigrationContext.configure(
        conn, opts={"version_table": tables.version_table, "version_table_schema": tables.schema}
    )
    return context.get_current_revision()


def upgrade(conn: Connection, tables: SaverTables, family: dialects.Family) -> tuple[str | None, str]:
    """Apply the revisions the database lacks; returns (revision before, revision after)."""
    with dialects.migration_lock(family, conn, f"checkpoint_sql migrate {tables.schema or ''}.{tables.prefix}"):
        before = current(conn, tables)
        if before != head():
            config = _config()
            config.attributes.update(connection=conn, tables=tables)
            command.upgrade(config, "head")
        return before, head()
