"""Small builders shared by the tests: checkpoints, configs, and a whole-database
snapshot for asserting that a rejected call changed nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_sql import SQLSaver
from checkpoint_sql.saver import elements


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


LONG = 2 * elements.PAGE + 8
"""Messages in `long_thread`'s conversation: two full pages of digests and a tail."""


def long_thread(saver: BaseCheckpointSaver[Any], thread_id: str = "long") -> list[dict[str, Any]]:
    """A conversation stored element by element, as an agent leaves it: one checkpoint
    per message (`LONG` of them, so its later versions have pages), a fork from its
    10th checkpoint, a subgraph namespace with a list of its own, and pending writes
    carrying a list. Returns the main line's stored configs, oldest first."""
    conversation = messages(LONG)
    stored, parent = [], config(thread_id)
    for n in range(1, LONG + 1):
        cp = checkpoint({"messages": conversation[:n], "step": n}, {"messages": n, "step": n})
        parent = saver.put(parent, cp, {"source": "loop", "step": n}, {"messages": n, "step": n})
        stored.append(parent)
    forked = [*conversation[:9], *messages(1, start=1000)]
    fork = checkpoint({"messages": forked, "step": 10}, {"messages": 1000, "step": 10})
    saver.put(stored[9], fork, {"source": "update", "step": 11}, {"messages": 1000})
    child = config(thread_id, ns="child:1")
    for n in (elements.PAGE + 1, elements.PAGE + 3):
        cp = checkpoint({"notes": messages(n, start=2000)}, {"notes": n})
        child = saver.put(child, cp, {"source": "loop", "step": n}, {"notes": n})
    saver.put_writes(stored[-1], [("messages", messages(2, start=3000)), ("step", LONG + 1)], "task-1")
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


def messages(n: int, start: int = 0, tag: str = "m", words: int = 50) -> list[BaseMessage]:
    """`n` distinct messages of a few hundred bytes (human, AI, tool in turn), as a
    conversation holds; `tag` tells branches apart."""
    out: list[BaseMessage] = []
    for i in range(start, start + n):
        text = f"{tag} message {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(words))
        kind = i % 3
        if kind == 0:
            out.append(HumanMessage(content=text, id=f"{tag}-h{i}"))
        elif kind == 1:
            out.append(AIMessage(content=text, id=f"{tag}-a{i}"))
        else:
            out.append(ToolMessage(content=text, tool_call_id=f"{tag}-c{i}", id=f"{tag}-t{i}"))
    return out
