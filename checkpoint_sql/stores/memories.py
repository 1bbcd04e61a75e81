"""The seed's memory API (genie's ``MemoryStore``), a thin layer over `SQLStore`.

A user's memories are items in the namespace ``("memories", app_name, user_id)``, each
``{"content": ..., "topics": [...]}`` under an id derived from (app, user, content):
adding the same content twice stores it once (and refreshes its topics).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.store.base import Result, SearchItem

from checkpoint_sql.errors import InvalidArgumentError
from checkpoint_sql.stores import namespaces, store_ops
from checkpoint_sql.stores.checks import Clock, count_arg, json_value, preview, text_arg
from checkpoint_sql.stores.component import Call, Intent
from checkpoint_sql.stores.store_ops import Batch, Context, Put, Search

ROOT = "memories"

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryEntry:
    id: str
    app_name: str
    user_id: str
    content: str
    topics: list[str]
    created_at: datetime
    updated_at: datetime


def memory_id(app_name: str, user_id: str, content: str) -> str:
    """The id of a memory: 32 hex digits of BLAKE2b over (app, user, content)."""
    text = "\x00".join((app_name, user_id, content)).encode("utf-8")
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _namespace(app_name: Any, user_id: Any) -> namespaces.Namespace:
    return namespaces.check_writable((ROOT, app_name, user_id), "memory namespace (memories, app_name, user_id)")


def _topics(topics: Any) -> list[str]:
    if isinstance(topics, str) or not isinstance(topics, Sequence):
        raise InvalidArgumentError(f"topics must be a list of strings, not {preview(topics)}")
    return [text_arg(t, "topic") for t in topics]


def _entry(app_name: str, user_id: str, item: SearchItem) -> MemoryEntry:
    return MemoryEntry(
        id=item.key,
        app_name=app_name,
        user_id=user_id,
        content=item.value.get("content", ""),
        topics=list(item.value.get("topics", [])),
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


class MemoryMethods:
    """`add_memory`, `read_memories`, `search_memories`, `update_memory`,
    `delete_memory`, `clear_memories` and their async twins, for `SQLStore`."""

    _clock: Clock
    _ctx: Context

    if TYPE_CHECKING:

        def _execute(self, batch: Batch) -> list[Result]: ...
        async def _aexecute(self, batch: Batch) -> list[Result]: ...
        def _run(self, call: Call[Any, T]) -> T: ...
        async def _arun(self, call: Call[Any, T]) -> T: ...

    def add_memory(self, app_name: str, user_id: str, content: str, topics: Sequence[str] = ()) -> str:
        """Store a memory for a user and return its id; adding the same content again
        keeps one memory (with the new topics). Rejects app or user ids that are not
        namespace labels (empty, with a period), empty content and non-string topics."""
        batch, key = self._add(app_name, user_id, content, topics)
        self._execute(batch)
        return key

    async def aadd_memory(self, app_name: str, user_id: str, content: str, topics: Sequence[str] = ()) -> str:
        batch, key = self._add(app_name, user_id, content, topics)
        await self._aexecute(batch)
        return key

    def _add(self, app_name: str, user_id: str, content: str, topics: Sequence[str]) -> tuple[Batch, str]:
        namespace = _namespace(app_name, user_id)
        key = memory_id(app_name, user_id, text_arg(content, "add_memory: content"))
        return self._write(namespace, key, {"content": content, "topics": _topics(topics)}, None), key

    def update_memory(
        self, app_name: str, user_id: str, memory_id: str, content: str, topics: Sequence[str] = ()
    ) -> None:
        """Replace a memory's content and topics (its id stays). Raises
        `MemoryNotFoundError` if the user has no such memory; nothing is written then."""
        self._execute(self._update(app_name, user_id, memory_id, content, topics))

    async def aupdate_memory(
        self, app_name: str, user_id: str, memory_id: str, content: str, topics: Sequence[str] = ()
    ) -> None:
        await self._aexecute(self._update(app_name, user_id, memory_id, content, topics))

    def _update(self, app_name: str, user_id: str, key: str, content: str, topics: Sequence[str]) -> Batch:
        namespace = _namespace(app_name, user_id)
        value = {"content": text_arg(content, "update_memory: content"), "topics": _topics(topics)}
        return self._write(namespace, text_arg(key, "update_memory: memory_id"), value, _missing(key, namespace))

    def delete_memory(self, app_name: str, user_id: str, memory_id: str) -> None:
        """Delete one memory. Raises `MemoryNotFoundError` if the user has no such memory."""
        self._execute(self._delete(app_name, user_id, memory_id))

    async def adelete_memory(self, app_name: str, user_id: str, memory_id: str) -> None:
        await self._aexecute(self._delete(app_name, user_id, memory_id))

    def _delete(self, app_name: str, user_id: str, key: str) -> Batch:
        namespace = _namespace(app_name, user_id)
        return self._write(namespace, text_arg(key, "delete_memory: memory_id"), None, _missing(key, namespace))

    def _write(
        self, namespace: namespaces.Namespace, key: str, value: dict[str, Any] | None, missing: str | None
    ) -> Batch:
        put = Put(
            namespaces.item_id(namespace, key), namespace, key, json_value(value, "memory"), None, missing=missing
        )
        if value is not None and self._ctx.scoring is not None:
            put.texts = [("content", value["content"])]
        return Batch(size=1, now=self._clock(), puts=[put], write=True)

    def clear_memories(self, app_name: str, user_id: str) -> int:
        """Delete all of a user's memories; how many there were."""
        return self._run(self._clear(app_name, user_id))

    async def aclear_memories(self, app_name: str, user_id: str) -> int:
        return await self._arun(self._clear(app_name, user_id))

    def _clear(self, app_name: str, user_id: str) -> Call[int, int]:
        namespace = _namespace(app_name, user_id)
        return Call(store_ops.delete_namespace, (self._ctx, namespace), int, intent=Intent.WRITE)

    def read_memories(self, app_name: str, user_id: str, limit: int = 100) -> list[MemoryEntry]:
        """A user's memories, most recently updated first, at most `limit`."""
        return self._entries(app_name, user_id, self._execute(self._read(app_name, user_id, limit, None)))

    async def aread_memories(self, app_name: str, user_id: str, limit: int = 100) -> list[MemoryEntry]:
        return self._entries(app_name, user_id, await self._aexecute(self._read(app_name, user_id, limit, None)))

    def search_memories(self, app_name: str, user_id: str, query: str, limit: int = 100) -> list[MemoryEntry]:
        """A user's memories whose content contains `query`, ignoring case; ``%`` and
        ``_`` in `query` are plain characters, not wildcards. Rejects an empty query."""
        batch = self._read(app_name, user_id, limit, text_arg(query, "search_memories: query"))
        return self._entries(app_name, user_id, self._execute(batch))

    async def asearch_memories(self, app_name: str, user_id: str, query: str, limit: int = 100) -> list[MemoryEntry]:
        batch = self._read(app_name, user_id, limit, text_arg(query, "search_memories: query"))
        return self._entries(app_name, user_id, await self._aexecute(batch))

    def _read(self, app_name: str, user_id: str, limit: int, contains: str | None) -> Batch:
        search = Search(
            position=0,
            prefix=_namespace(app_name, user_id),
            filter={},
            limit=count_arg(limit, "limit", minimum=1),
            offset=0,
            refresh=False,
            contains=None if contains is None else (("content",), contains),
        )
        return Batch(size=1, now=self._clock(), searches=[search])

    @staticmethod
    def _entries(app_name: str, user_id: str, results: list[Result]) -> list[MemoryEntry]:
        found = results[0]
        assert isinstance(found, list)
        return [_entry(app_name, user_id, item) for item in found if isinstance(item, SearchItem)]


def _missing(key: str, namespace: namespaces.Namespace) -> str:
    return f"no memory {key!r} for app {namespace[1]!r}, user {namespace[2]!r}"
