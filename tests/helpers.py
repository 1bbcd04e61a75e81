"""Small builders shared by the tests: checkpoints, configs, and a whole-database
snapshot for asserting that a rejected call changed nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_sql import SQLSaver


def config(thread_id: Any, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(values: dict[str, Any] | None = None, versions: dict[str, Any] | None = None) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = dict(values or {})
    cp["channel_versions"] = dict(versions if versions is not None else {k: 1 for k in values or {}})
    return cp


def put_chain(
    saver: SQLSaver, thread_id: Any, n: int, *, ns: str = "", metadata: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`n` checkpoints in a parent chain; returns their stored configs, oldest first."""
    stored: list[dict[str, Any]] = []
    parent = config(thread_id, ns=ns)
    for step in range(n):
        cp = checkpoint({"step": step}, {"step": step + 1})
        parent = saver.put(parent, cp, {"source": "loop", "step": step, **(metadata or {})}, {"step": step + 1})
        stored.append(parent)
    return stored


def snapshot(saver: SQLSaver) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the saver's tables, sorted: equal snapshots mean nothing changed."""
    tables = saver.tables
    with saver.db.sync_engine.connect() as conn:
        return {
            t.name: sorted((tuple(repr(v) for v in row) for row in conn.execute(sa.select(t))), key=repr)
            for t in (tables.checkpoints, tables.blobs, tables.parts, tables.writes)
        }


def count(saver: SQLSaver, table: str) -> int:
    t = getattr(saver.tables, table)
    with saver.db.sync_engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
