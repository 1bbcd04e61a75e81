"""A thread's history: every checkpoint of every namespace as a `lineage.Entry`.

One read transaction fetches what the tree needs and nothing more: the checkpoint
rows, the blobs of the trigger channels only (small markers and pending Sends, not
the messages), the list parts of the pending Sends (a list of Sends is stored
element by element, `checkpoint_sql.saver.elements`), and the pending writes with their
values left out except for interrupts and errors. Decoding happens afterwards,
outside the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.serde.base import SerializerProtocol
from rich.console import Group, RenderableType
from rich.text import Text
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.admin import lineage
from checkpoint_sql.core.ids import key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.core.links import Link
from checkpoint_sql.dialects import Family
from checkpoint_sql.errors import MissingPartsError
from checkpoint_sql.saver import codec, operations
from checkpoint_sql.saver.schema import SaverTables
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.saver.statements import SaverStatements

Row = sa.Row[Any]
LEGEND = "✓ done  ⏸ waiting for a resume  ✗ failed  ↺ resumed · next: what runs when the graph goes on"


class HistoryStatements:
    """The reads of a history. Values are left out except where the tree shows them,
    since a thread's messages can be megabytes per checkpoint. The saver's own
    statements fetch the parts of split values (`operations.fetch_parts`)."""

    def __init__(self, tables: SaverTables, family: Family) -> None:
        cp, bl, wr = tables.checkpoints, tables.blobs, tables.writes
        self.saver = SaverStatements(tables, family)
        self.checkpoints: sa.Select[Any] = sa.select(
            cp.c.ns_key,
            cp.c.thread_id,
            cp.c.checkpoint_ns,
            cp.c.checkpoint_id,
            cp.c.parent_checkpoint_id,
            cp.c.type,
            cp.c.checkpoint,
            cp.c.metadata,
            cp.c.versions,
            cp.c.created_us,
        ).where(cp.c.thread_key == bindparam("tkey"))
        self.triggers: sa.Select[Any] = sa.select(
            bl.c.thread_key, bl.c.ns_key, bl.c.channel, bl.c.version, bl.c.type, bl.c.blob, bl.c.manifest
        ).where(
            bl.c.thread_key == bindparam("tkey"),
            sa.or_(bl.c.channel.in_([lineage.START, lineage.TASKS]), bl.c.channel.startswith(lineage.BRANCH)),
            bl.c.type != codec.EMPTY,
        )
        telling = wr.c.channel.in_([lineage.INTERRUPT, lineage.ERROR])
        self.writes: sa.Select[Any] = sa.select(
            wr.c.ns_key,
            wr.c.checkpoint_id,
            wr.c.task_id,
            wr.c.idx,
            wr.c.channel,
            wr.c.task_path,
            sa.case((telling, wr.c.type), else_=sa.null()).label("type"),
            sa.case((telling, wr.c.blob), else_=sa.null()).label("blob"),
        ).where(wr.c.thread_key == bindparam("tkey"))


@dataclass
class HistoryRows:
    checkpoints: list[Row]
    triggers: list[Row]
    writes: list[Row]
    parts: codec.Parts = field(default_factory=dict)
    """The parts of the split pending-Sends values among `triggers`."""


def of_thread(saver: SQLSaver, thread_id: str) -> History:
    """A thread's history, read in one snapshot (so that the parts its trigger blobs
    list are all there), then decoded."""
    statements = HistoryStatements(saver.tables, saver.db.family)
    rows = saver.db.run(_load, statements, key_of(thread_id_of(thread_id)), intent=Intent.READ_SNAPSHOT)
    return _build(saver.serde, rows)


def _load(conn: Connection, hs: HistoryStatements, thread_key: bytes) -> HistoryRows:
    """The rows of one thread's history."""
    params = {"tkey": thread_key}
    rows = HistoryRows(
        checkpoints=list(conn.execute(hs.checkpoints, params)),
        triggers=list(conn.execute(hs.triggers, params)),
        writes=list(conn.execute(hs.writes, params)),
    )
    sends = [r for r in rows.triggers if r.channel == lineage.TASKS]  # the only values the tree decodes
    if not operations.fetch_parts(Link.of(conn), hs.saver, sends, rows.parts):
        raise MissingPartsError(
            f"the pending Sends of a checkpoint have list elements missing from {hs.saver.tables.parts.name}"
        )
    return rows


@dataclass
class Namespace:
    checkpoint_ns: str
    entries: list[lineage.Entry]
    roots: list[lineage.Entry]


@dataclass
class History:
    thread_id: str
    namespaces: list[Namespace]

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "namespaces": [
                {
                    "checkpoint_ns": ns.checkpoint_ns,
                    "checkpoints": [e.to_json() for e in sorted(ns.entries, key=lambda e: e.checkpoint_id)],
                }
                for ns in self.namespaces
            ],
        }

    def render(self) -> RenderableType:
        parts: list[RenderableType] = []
        for ns in self.namespaces:
            where = "" if not ns.checkpoint_ns else f", namespace {ns.checkpoint_ns}"
            parts.append(lineage.render(ns.roots, f"thread {self.thread_id}{where}: {len(ns.entries)} checkpoints"))
        return Group(*parts, Text(LEGEND, "dim"))


def _build(serde: SerializerProtocol, rows: HistoryRows) -> History:
    """Decode `rows` into one lineage tree per namespace (the root namespace first)."""
    triggers: dict[tuple[bytes, str, str], Row] = {
        (bytes(r.ns_key), r.channel, str(r.version)): r for r in rows.triggers
    }
    writes: dict[tuple[bytes, str], list[Row]] = {}
    for w in rows.writes:
        writes.setdefault((bytes(w.ns_key), w.checkpoint_id), []).append(w)
    by_ns: dict[str, list[lineage.Entry]] = {}
    for row in rows.checkpoints:
        entry = _entry(serde, row, triggers, rows.parts, writes.get((bytes(row.ns_key), row.checkpoint_id), []))
        by_ns.setdefault(row.checkpoint_ns, []).append(entry)
    thread_id = rows.checkpoints[0].thread_id if rows.checkpoints else ""
    return History(thread_id, [Namespace(ns, entries, lineage.build(entries)) for ns, entries in sorted(by_ns.items())])


def _entry(
    serde: SerializerProtocol,
    row: Row,
    triggers: Mapping[tuple[bytes, str, str], Row],
    parts: codec.Parts,
    writes: Sequence[Row],
) -> lineage.Entry:
    body = codec.load(serde, row.type, row.checkpoint)
    versions = codec.channel_versions(row)
    values: dict[str, Any] = {}
    for channel, version in versions.items():
        blob = triggers.get((bytes(row.ns_key), channel, str(version)))
        if blob is not None:
            if channel == lineage.TASKS:
                values[channel] = codec.load(serde, blob.type, codec.blob_bytes(blob, parts))
            else:
                values[channel] = True
    sends: Sequence[Any] = values.get(lineage.TASKS) or ()
    tasks: dict[str, lineage.Task] = {}
    interrupts: list[Any] = []
    for w in codec.sorted_writes(writes):
        task = tasks.setdefault(w.task_id, lineage.Task(w.task_id, lineage.task_node(w.task_path, sends), []))
        task.channels.append(w.channel)
        if w.channel == lineage.INTERRUPT:
            interrupts.extend(getattr(i, "value", i) for i in codec.load(serde, w.type, w.blob) or ())
    metadata = codec.load_json(row.metadata) or {}
    return lineage.Entry(
        checkpoint_id=row.checkpoint_id,
        parent_id=row.parent_checkpoint_id,
        checkpoint_ns=row.checkpoint_ns,
        step=metadata.get("step", "?"),
        source=str(metadata.get("source", "?")),
        created=datetime.fromtimestamp(row.created_us / 1_000_000, tz=timezone.utc),
        next=lineage.next_nodes(versions, body.get("versions_seen") or {}, values),
        tasks=list(tasks.values()),
        interrupts=interrupts,
    )
