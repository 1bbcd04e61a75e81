"""Bringing a database's tables to the current schema with the bundled Alembic revisions.

Each component (the saver; the companion stores) has its own revision history and
version table (`MigrationTarget`). `upgrade` is an operation, a function of one sync
`Connection`, so `setup()` and `asetup()` run the same code. It is idempotent and safe
when many processes start at once: it takes a per-target migration lock first
(`dialects.locks.migration_lock`), then reads the version, and only the first process to get
the lock migrates. No statement needs to run outside a transaction (no
``CREATE INDEX CONCURRENTLY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.locks import migration_lock

_MIGRATIONS = Path(__file__).parent.parent / "migrations"


@dataclass(frozen=True)
class MigrationTarget:
    """One component's tables: where its revisions live and where its version is kept."""

    component: str
    """Directory under ``checkpoint_sql/migrations`` holding the component's revisions."""
    prefix: str
    schema: str | None
    metadata: sa.MetaData
    """The tables the code uses, for Alembic's comparison tools."""

    @property
    def version_table(self) -> str:
        """Alembic's version table for this component: ours, never the host app's."""
        suffix = "" if self.component == "saver" else f"_{self.component}"
        return f"{self.prefix}alembic_version{suffix}"

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS / self.component))
        return config


@cache
def _head(component: str) -> str:
    revision = ScriptDirectory.from_config(
        MigrationTarget(component, "", None, sa.MetaData()).config()
    ).get_current_head()
    assert revision is not None
    return revision


def head(target: MigrationTarget) -> str:
    """The newest bundled revision of the target's component."""
    return _head(target.component)


def current(conn: Connection, target: MigrationTarget) -> str | None:
    """The revision the database is at, or None before the first `setup()`."""
    migration = MigrationContext.configure(
        conn, opts={"version_table": target.version_table, "version_table_schema": target.schema}
    )
    return migration.get_current_revision()


def upgrade(conn: Connection, target: MigrationTarget, family: Family) -> tuple[str | None, str]:
    """Apply the revisions the database lacks; returns (revision before, revision after)."""
    lock = f"checkpoint_sql {target.component} {target.schema or ''}.{target.prefix}"
    with migration_lock(family, conn, lock):
        before = current(conn, target)
        if before != head(target):
            config = target.config()
            config.attributes.update(connection=conn, target=target)
            command.upgrade(config, "head")
        return before, head(target)


def run_environment() -> None:
    """Body of every component's ``env.py``: Alembic's documented "shared connection"
    recipe, on the connection `upgrade` hands over, under the target's own version
    table, passing the table prefix and schema to each revision."""
    target: MigrationTarget = context.config.attributes["target"]
    context.configure(
        connection=context.config.attributes["connection"],
        version_table=target.version_table,
        version_table_schema=target.schema,
        target_metadata=target.metadata,
    )
    with context.begin_transaction():
        context.run_migrations(prefix=target.prefix, schema=target.schema)
