"""Running the ``checkpoint-sql`` command in-process and checking a database's
invariants after it changed something."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import SQLSaver
from checkpoint_sql.admin import cli
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.saver import codec


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def failed_cleanly(self, code: int = 1) -> str:
        """Assert the command failed with one line on stderr and no traceback; returns it."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err + self.out
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """`cli.main(args)`; a usage error's SystemExit becomes the exit code."""
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def orphans(saver: SQLSaver) -> dict[str, list[Any]]:
    """Blobs no checkpoint points at and writes whose checkpoint is gone: retention
    and deletion must leave none."""
    tables = saver.tables
    with saver.db.sync_engine.connect() as conn:
        checkpoints = conn.execute(sa.select(tables.checkpoints)).all()
        blobs = conn.execute(
            sa.select(tables.blobs.c.thread_key, tables.blobs.c.ns_key, tables.blobs.c.channel, tables.blobs.c.version)
        ).all()
        writes = conn.execute(
            sa.select(tables.writes.c.thread_key, tables.writes.c.ns_key, tables.writes.c.checkpoint_id)
        ).all()
    referenced = {key for row in checkpoints for key in codec.blob_keys(row)}
    existing = {(r.thread_key, r.ns_key, r.checkpoint_id) for r in checkpoints}
    return {
        "blobs": [
            tuple(b) for b in blobs if (bytes(b.thread_key), bytes(b.ns_key), b.channel, b.version) not in referenced
        ],
        "writes": [tuple(w) for w in writes if (bytes(w.thread_key), bytes(w.ns_key), w.checkpoint_id) not in existing],
    }


def all_tuples(saver: SQLSaver) -> dict[tuple[str, str, str], Any]:
    """Every checkpoint tuple of the database by (thread, namespace, id)."""
    found = {}
    for t in saver.list(None):
        c = t.config["configurable"]
        found[(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])] = saver.get_tuple(t.config)
    return found


def age(saver: SQLSaver, thread: str, days: int) -> None:
    """Make a thread look `days` old: move its retention clock back."""
    cp = saver.tables.checkpoints
    with saver.db.sync_engine.begin() as conn:
        conn.execute(
            sa.update(cp)
            .where(cp.c.thread_key == key_of(thread))
            .values(created_us=cp.c.created_us - days * 86_400_000_000)
        )
