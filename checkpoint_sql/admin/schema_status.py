"""Where a database's saver schema stands against the bundled migrations
(`checkpoint-sql migrate --show`, `doctor`), and bringing it to the head
(`checkpoint-sql migrate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from checkpoint_sql.core import migrate
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.core.migrate import MigrationTarget
from checkpoint_sql.saver.sql_saver import SQLSaver


@dataclass
class SchemaStatus:
    current: str | None
    head: str
    pending: list[tuple[str, str]]
    """(revision, title) of each revision the database lacks, oldest first."""
    known: bool
    """Whether this package knows the database's revision (False: the database was
    migrated by a newer checkpoint-sql)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "head": self.head,
            "up_to_date": self.current == self.head,
            "known": self.known,
            "pending": [{"revision": r, "title": t} for r, t in self.pending],
        }


def of_saver(saver: SQLSaver) -> SchemaStatus:
    """The status of the saver's tables, in one statement."""
    return saver.db.run(status, saver.tables.migrations, intent=Intent.ONE_STATEMENT)


def upgrade(saver: SQLSaver) -> tuple[str | None, str]:
    """What `SQLSaver.setup` does, telling the revision before and after, for the
    command to say whether anything changed."""
    return saver.db.run(migrate.upgrade, saver.tables.migrations, saver.db.family, intent=Intent.WRITE)


def status(conn: Connection, target: MigrationTarget) -> SchemaStatus:
    current = migrate.current(conn, target)
    script = ScriptDirectory.from_config(target.config())
    known = _exists(script, current)
    pending = []
    if known:
        for revision in script.iterate_revisions(migrate.head(target), current or "base"):
            title = revision.doc.strip().splitlines()[0] if revision.doc else revision.revision
            pending.append((revision.revision, title))
    return SchemaStatus(current, migrate.head(target), list(reversed(pending)), known)


def _exists(script: ScriptDirectory, revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
