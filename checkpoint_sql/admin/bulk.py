"""Writing a whole thread's rows at once: what `import` and `import-langgraph` share.

Rows arrive already in table form (from an export file, or translated from the
official savers' tables), so nothing is decoded or re-serialized here: they are
inserted with the saver's own multi-row INSERTs, a thread per transaction, so a
thread is imported entirely or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from checkpoint_sql.core.compiled import CompiledStatement
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.core.links import Link
from checkpoint_sql.errors import ThreadExistsError
from checkpoint_sql.saver import operations
from checkpoint_sql.saver.statements import ROWS_PER_INSERT, RowsInsert, SaverStatements


@dataclass
class ThreadRows:
    """Every row of one thread, keyed and encoded as the tables store them
    (``metadata`` and ``versions`` as JSON text)."""

    thread_id: str
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[dict[str, Any]] = field(default_factory=list)
    """Blob rows, ``manifest`` included (None for a value stored whole)."""
    parts: list[dict[str, Any]] = field(default_factory=list)
    """Rows of the parts table the blobs' manifests reach."""
    writes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def thread_key(self) -> bytes:
        return key_of(self.thread_id)

    def counts(self) -> dict[str, int]:
        return {
            "checkpoints": len(self.checkpoints),
            "blobs": len(self.blobs),
            "parts": len(self.parts),
            "writes": len(self.writes),
        }


class Inserts:
    """The saver's multi-row INSERTs, compiled once per row count."""

    def __init__(self, st: SaverStatements) -> None:
        self.st = st
        self._prepared: dict[tuple[str, int], CompiledStatement] = {}

    def run(self, conn: Connection, insert: RowsInsert, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), ROWS_PER_INSERT):
            part = rows[start : start + ROWS_PER_INSERT]
            key = (insert.role, len(part))
            if key not in self._prepared:
                self._prepared[key] = CompiledStatement(insert.statement(len(part)))
            self._prepared[key].execute(Link.of(conn), insert.params(part))


def insert_thread(conn: Connection, inserts: Inserts, rows: ThreadRows, replace: bool) -> None:
    """Insert one thread; a thread already holding checkpoints is refused, or, with
    `replace`, deleted first (in the same transaction)."""
    st = inserts.st
    if conn.execute(st.thread_has_checkpoints, {"tkey": rows.thread_key}).first() is not None:
        if not replace:
            raise ThreadExistsError(
                f"thread {rows.thread_id!r} already exists here; import with --replace (replace=True) to overwrite it"
            )
        operations.delete_threads(conn, st, [rows.thread_key])
    inserts.run(conn, st.parts_insert, rows.parts)
    inserts.run(conn, st.blob_insert, rows.blobs)
    inserts.run(conn, st.writes_keep_first, rows.writes)
    inserts.run(conn, st.checkpoint_upsert, rows.checkpoints)
