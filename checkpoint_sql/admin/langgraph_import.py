"""Copy threads from the official savers' tables into ours (`checkpoint-sql import-langgraph`).

Two layouts are read, straight from their tables (the official packages need not be
installed):

* ``langgraph-checkpoint-postgres`` (PostgreSQL): ``checkpoints`` holds the
  checkpoint as JSONB with the primitive channel values (None, str, int, float,
  bool) inlined in its ``channel_values``; every other value is a row of
  ``checkpoint_blobs`` keyed by (thread, namespace, channel, version), and a blob
  wins over an inline entry (a `DeltaChannel` snapshot leaves a ``true`` marker
  inline). Checkpoints older than format 4 keep their pending Sends in the parent's
  writes to the ``__pregel_tasks`` channel; they are moved into that channel, as the
  official saver does when it reads them. ``checkpoint_writes`` are copied as they are.
* ``langgraph-checkpoint-sqlite`` (SQLite): ``checkpoints`` holds the whole serialized
  checkpoint, values included, and ``writes`` the pending writes.

Each checkpoint becomes one of our rows and each (namespace, channel, version) one
blob, so the imported thread reads back through `SQLSaver.get_tuple` exactly as it
did through the official saver. Values already serialized (blobs, writes) are copied
byte for byte; inline values and SQLite's checkpoints are decoded and serialized again
with the saver's serializer, which must therefore read what the official saver wrote
(the default serializer does). A value serialized as a msgpack list is then stored
element by element, as a `put` of ours stores it (`elements.split` cuts the very
bytes, so nothing is re-encoded): an imported long conversation costs each message
once, not once per checkpoint. A thread already in our tables is skipped unless
``replace``. One source read and one target transaction per thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.base import writes_sort_key
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from checkpoint_sql.admin.bulk import Inserts, ThreadRows, insert_thread
from checkpoint_sql.admin.lineage import TASKS
from checkpoint_sql.core.calls import Progress
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.ids import key_of, thread_id_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.columns import canonical_json
from checkpoint_sql.errors import ConfigurationError, ThreadExistsError, ThreadNotFoundError
from checkpoint_sql.saver import codec, elements
from checkpoint_sql.saver.sql_saver import SQLSaver
from checkpoint_sql.saver.statements import SaverStatements

_WRITE_COLUMNS = ("checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type")


@dataclass
class ImportReport:
    source: str
    layout: str
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Threads already in our tables (left as they are)."""
    checkpoints: int = 0
    blobs: int = 0
    parts: int = 0
    """Elements (and pages of digests) of the lists stored element by element."""
    writes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "layout": self.layout,
            "imported": self.imported,
            "skipped": self.skipped,
            "checkpoints": self.checkpoints,
            "blobs": self.blobs,
            "parts": self.parts,
            "writes": self.writes,
        }


@dataclass(frozen=True)
class _Layout:
    """The official tables of one package, as lightweight Core tables."""

    name: str
    checkpoints: sa.TableClause
    blobs: sa.TableClause | None
    writes: sa.TableClause

    def thread_ids(self, conn: Connection) -> list[str]:
        query = sa.select(self.checkpoints.c.thread_id).distinct().order_by(self.checkpoints.c.thread_id)
        return [str(t) for t in conn.execute(query).scalars()]

    def read(self, conn: Connection, thread_id: str) -> tuple[list[Any], list[Any], list[Any]]:
        """The checkpoint, blob and write rows of one thread."""
        params = {"t": thread_id}
        cp = self.checkpoints
        checkpoints = conn.execute(
            sa.select(cp).where(cp.c.thread_id == bindparam("t")).order_by(cp.c.checkpoint_ns, cp.c.checkpoint_id),
            params,
        ).mappings()
        result = [dict(r) for r in checkpoints]
        blobs = []
        if self.blobs is not None:
            blobs = [
                dict(r)
                for r in conn.execute(
                    sa.select(self.blobs).where(self.blobs.c.thread_id == bindparam("t")), params
                ).mappings()
            ]
        writes = [
            dict(r)
            for r in conn.execute(
                sa.select(self.writes).where(self.writes.c.thread_id == bindparam("t")), params
            ).mappings()
        ]
        return result, blobs, writes


def _layout(conn: Connection, family: Family) -> _Layout:
    names = set(sa.inspect(conn).get_table_names())
    checkpoint_columns = (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "parent_checkpoint_id",
        "type",
        "checkpoint",
        "metadata",
    )
    found = ", ".join(sorted(names)) or "none"
    if family == "postgresql":
        if not {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= names:
            raise ConfigurationError(
                "no langgraph-checkpoint-postgres tables here (need checkpoints, checkpoint_blobs, "
                f"checkpoint_writes; found {found})"
            )
        return _Layout(
            "langgraph-checkpoint-postgres",
            sa.table("checkpoints", *map(sa.column, checkpoint_columns)),
            sa.table(
                "checkpoint_blobs",
                *map(sa.column, ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob")),
            ),
            sa.table("checkpoint_writes", *map(sa.column, ("thread_id", *_WRITE_COLUMNS, "blob", "task_path"))),
        )
    if family == "sqlite":
        if not {"checkpoints", "writes"} <= names:
            raise ConfigurationError(
                f"no langgraph-checkpoint-sqlite tables here (need checkpoints, writes; found {found})"
            )
        write_columns = {c["name"] for c in sa.inspect(conn).get_columns("writes")}
        path = ("task_path",) if "task_path" in write_columns else ()
        return _Layout(
            "langgraph-checkpoint-sqlite",
            sa.table("checkpoints", *map(sa.column, checkpoint_columns)),
            None,
            sa.table("writes", *map(sa.column, ("thread_id", *_WRITE_COLUMNS, "value", *path))),
        )
    raise ConfigurationError(
        "import-langgraph reads the tables of langgraph-checkpoint-postgres (a postgresql:// URL) "
        "and langgraph-checkpoint-sqlite (a sqlite:/// URL)"
    )


def import_langgraph(
    saver: SQLSaver,
    source_url: str,
    thread_ids: Sequence[str] | None = None,
    *,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy `thread_ids` (None: all) from the official saver's tables at `source_url`."""
    source = Database(source_url)
    try:
        layout = source.run(_layout, source.family, intent=Intent.ONE_STATEMENT)
        available = source.run(layout.thread_ids, intent=Intent.ONE_STATEMENT)
        if thread_ids is None:
            wanted = available
        else:
            wanted = list(dict.fromkeys(thread_id_of(t) for t in thread_ids))
            missing = [t for t in wanted if t not in set(available)]
            if missing:
                raise ThreadNotFoundError(f"no such thread in {source.masked_url}: {', '.join(map(repr, missing))}")
        report = ImportReport(source.masked_url, layout.name)
        inserts = Inserts(SaverStatements(saver.tables, saver.db.family))
        for done, thread_id in enumerate(wanted, start=1):
            checkpoints, blobs, writes = source.run(layout.read, thread_id, intent=Intent.READ_SNAPSHOT)
            translate = _from_postgres if layout.blobs is not None else _from_sqlite
            rows = translate(saver.serde, thread_id, checkpoints, blobs, writes)
            # A replaced thread's parts are deleted: the saver must not go on skipping them in puts.
            forget = elements.forgetting([rows.thread_key])
            try:
                saver.db.run(insert_thread, inserts, rows, replace, intent=Intent.WRITE)
            except ThreadExistsError:
                report.skipped.append(thread_id)
            else:
                forget(None)
                report.imported.append(thread_id)
                report.checkpoints += len(rows.checkpoints)
                report.blobs += len(rows.blobs)
                report.parts += len(rows.parts)
                report.writes += len(rows.writes)
            if progress is not None:
                progress(done, len(wanted))
        return report
    finally:
        source.close()


# --- translating rows -------------------------------------------------------------------


class _Builder:
    """Our rows for one thread, one blob per (namespace, channel, version): a stored
    value is preferred over an ``empty`` marker for the same key. Lists are split
    once the blobs are known (`done`)."""

    def __init__(self, serde: SerializerProtocol, thread_id: str) -> None:
        self.serde = serde
        self.rows = ThreadRows(thread_id)
        self._blobs: dict[tuple[str, str, str], dict[str, Any]] = {}

    def blob(self, ns: str, channel: str, version: Any, stored: tuple[str, bytes | None]) -> None:
        key = (ns, channel, str(version))
        if key in self._blobs and (self._blobs[key]["type"] != codec.EMPTY or stored[0] == codec.EMPTY):
            return
        self._blobs[key] = {
            "thread_key": self.rows.thread_key,
            "ns_key": key_of(ns),
            "channel": channel,
            "version": str(version),
            "type": stored[0],
            "blob": stored[1],
            "manifest": None,
        }

    def checkpoint(self, row: Mapping[str, Any], checkpoint: dict[str, Any], metadata: Mapping[str, Any]) -> None:
        body = {k: v for k, v in checkpoint.items() if k not in ("channel_values", "channel_versions")}
        type_, data = codec.dump(self.serde, body, f"checkpoint {row['checkpoint_id']}")
        run_id = metadata.get("run_id")
        self.rows.checkpoints.append(
            {
                "thread_key": self.rows.thread_key,
                "ns_key": key_of(row["checkpoint_ns"]),
                "checkpoint_id": row["checkpoint_id"],
                "thread_id": self.rows.thread_id,
                "checkpoint_ns": row["checkpoint_ns"],
                "parent_checkpoint_id": row["parent_checkpoint_id"] or None,
                "type": type_,
                "checkpoint": data,
                "metadata": canonical_json(metadata),
                "versions": codec.versions_json(checkpoint["channel_versions"]),
                "run_id": None if run_id is None else str(run_id),
                "created_us": codec.created_us(checkpoint),  # type: ignore[arg-type]
            }
        )

    def write(self, row: Mapping[str, Any], value_column: str) -> None:
        self.rows.writes.append(
            {
                "thread_key": self.rows.thread_key,
                "ns_key": key_of(row["checkpoint_ns"]),
                "checkpoint_id": row["checkpoint_id"],
                "task_id": row["task_id"],
                "idx": int(row["idx"]),
                "channel": row["channel"],
                "task_path": row.get("task_path") or "",
                "type": row["type"],
                "blob": None if row[value_column] is None else bytes(row[value_column]),
            }
        )

    def done(self) -> ThreadRows:
        """The thread's rows, its msgpack lists cut into parts as `codec.prepare_put`
        cuts them, each part once per namespace."""
        parts: dict[tuple[bytes, bytes], bytes] = {}
        for blob in self._blobs.values():
            split = elements.split(blob["type"], blob["blob"])
            if split is not None:
                blob["blob"], blob["manifest"] = split.header, split.manifest
                parts.update(((blob["ns_key"], d), data) for d, data in split.parts.items())
        self.rows.blobs = list(self._blobs.values())
        self.rows.parts = [
            {"thread_key": self.rows.thread_key, "ns_key": ns_key, "digest": d, "data": data}
            for (ns_key, d), data in sorted(parts.items())
        ]
        return self.rows


def _from_postgres(
    serde: SerializerProtocol, thread_id: str, checkpoints: list[Any], blobs: list[Any], writes: list[Any]
) -> ThreadRows:
    build = _Builder(serde, thread_id)
    stored = {(b["checkpoint_ns"], b["channel"], b["version"]): b for b in blobs}
    sends = _pending_sends(writes)
    for row in checkpoints:
        checkpoint = dict(codec.load_json(row["checkpoint"]))
        inline = checkpoint.get("channel_values") or {}
        versions = dict(checkpoint.get("channel_versions") or {})
        ns = row["checkpoint_ns"]
        parent_sends = sends.get((ns, row["parent_checkpoint_id"]))
        if checkpoint.get("v", 4) < 4 and parent_sends and versions:
            versions[TASKS] = max(versions.values())
            value = [codec.load(serde, w["type"], w["blob"]) for w in parent_sends]
            build.blob(ns, TASKS, versions[TASKS], codec.dump(serde, value, "pending sends"))
        for channel, version in versions.items():
            blob = stored.get((ns, channel, str(version)))
            if blob is not None:
                build.blob(ns, channel, version, (blob["type"], None if blob["blob"] is None else bytes(blob["blob"])))
            elif channel in inline:
                build.blob(ns, channel, version, codec.dump(serde, inline[channel], f"channel {channel!r}"))
            else:
                build.blob(ns, channel, version, (codec.EMPTY, None))
        build.checkpoint(row, {**checkpoint, "channel_versions": versions}, codec.load_json(row["metadata"]) or {})
    for w in writes:
        build.write(w, "blob")
    return build.done()


def _pending_sends(writes: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Writes to the tasks channel by (namespace, checkpoint), in the order applied."""
    sends: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    ordered = sorted(writes, key=lambda w: writes_sort_key(w.get("task_path") or "", w["task_id"], int(w["idx"])))
    for w in ordered:
        if w["channel"] == TASKS:
            sends.setdefault((w["checkpoint_ns"], w["checkpoint_id"]), []).append(w)
    return sends


def _from_sqlite(
    serde: SerializerProtocol, thread_id: str, checkpoints: list[Any], blobs: list[Any], writes: list[Any]
) -> ThreadRows:
    build = _Builder(serde, thread_id)
    for row in checkpoints:
        checkpoint = codec.load(serde, row["type"], row["checkpoint"])
        values = checkpoint.get("channel_values") or {}
        for channel, version in (checkpoint.get("channel_versions") or {}).items():
            if channel in values:
                build.blob(
                    row["checkpoint_ns"], channel, version, codec.dump(serde, values[channel], f"channel {channel!r}")
                )
            else:
                build.blob(row["checkpoint_ns"], channel, version, (codec.EMPTY, None))
        metadata = json.loads(row["metadata"]) if row["metadata"] is not None else {}
        build.checkpoint(row, checkpoint, metadata)
    for w in writes:
        build.write(w, "value")
    return build.done()
