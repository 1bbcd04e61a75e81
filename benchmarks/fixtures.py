"""Data the workloads need, made from one recorded conversation.

A recorded conversation (`graph.record_conversation`) is replayed into any saver under
any thread id, through the saver's own `put`/`put_writes`: every saver stores exactly
what LangGraph asked a saver to store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.base.id import uuid6

from benchmarks.graph import Recorded

PutArgs = tuple[RunnableConfig, Checkpoint, CheckpointMetadata, ChannelVersions]
WritesArgs = tuple[RunnableConfig, list[tuple[str, Any]], str, str]


def in_thread(config: RunnableConfig, thread_id: str) -> RunnableConfig:
    """`config` moved to another thread."""
    configurable = dict(config.get("configurable") or {})
    configurable["thread_id"] = thread_id
    return {**config, "configurable": configurable}


def calls(recorded: Recorded, thread_id: str) -> Iterator[tuple[str, Any]]:
    """The recorded calls in order, moved to `thread_id`."""
    for kind, index in recorded.order:
        if kind == "put":
            config, checkpoint, metadata, versions = recorded.puts[index]
            yield "put", (in_thread(config, thread_id), checkpoint, metadata, versions)
        else:
            config, writes, task_id, task_path = recorded.writes[index]
            yield "writes", (in_thread(config, thread_id), writes, task_id, task_path)


def load(saver: BaseCheckpointSaver[Any], recorded: Recorded, thread_id: str) -> None:
    for kind, args in calls(recorded, thread_id):
        if kind == "put":
            saver.put(*args)
        else:
            saver.put_writes(*args)


async def aload(saver: BaseCheckpointSaver[Any], recorded: Recorded, thread_id: str) -> None:
    for kind, args in calls(recorded, thread_id):
        if kind == "put":
            await saver.aput(*args)
        else:
            await saver.aput_writes(*args)


def checkpoint_ids(recorded: Recorded) -> list[str]:
    return [str(put[1]["id"]) for put in recorded.puts]


def fresh_put(template: PutArgs, thread_id: str, checkpoint_id: str | None = None) -> PutArgs:
    """The recorded `put` as a new checkpoint (new id) of another thread."""
    config, checkpoint, metadata, versions = template
    fresh = copy.copy(checkpoint)
    fresh["id"] = checkpoint_id or new_id()
    return in_thread(config, thread_id), fresh, metadata, versions


def new_id() -> str:
    return str(uuid6(clock_seq=-1))


def thread_config(thread_id: str, checkpoint_id: str | None = None, ns: str | None = "") -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if ns is not None:
        configurable["checkpoint_ns"] = ns
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}
