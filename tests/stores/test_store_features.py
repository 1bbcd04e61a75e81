"""`SQLStore` beyond the plain contract: TTLs (with a clock the test moves), the TTL
sweeper, semantic search ranking against `InMemoryStore`, and the seed's memory API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.store.memory import InMemoryStore

from checkpoint_sql import ConfigurationError, MemoryNotFoundError, SQLStore
from checkpoint_sql.dialects.vectors import sqlite_vec_loadable
from tests.store_helpers import INDEX, Clock, aembed, snapshot


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> Iterator[SQLStore]:
    with SQLStore.from_conn_string(db_url, index=INDEX, ttl={"default_ttl": 1.0}, clock=clock) as s:
        s.setup()
        yield s


def _rows(store: SQLStore, table: str) -> int:
    with store.db.sync_engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(getattr(store.tables, table))).scalar_one())


# --- TTL ---------------------------------------------------------------------------------


def test_items_expire_reads_refresh_them_and_expired_items_are_never_returned(store: SQLStore, clock: Clock) -> None:
    store.put(("n",), "default", {"text": "python"})  # the store's default: 1 minute
    store.put(("n",), "forever", {"text": "cat"}, ttl=None)
    store.put(("n", "deep"), "two", {"text": "dog"}, ttl=2)
    clock.advance(seconds=50)
    assert store.get(("n",), "default") is not None  # refreshed: now expires at 110 s
    assert store.get(("n", "deep"), "two", refresh_ttl=False) is not None  # still expires at 120 s
    clock.advance(seconds=50)
    assert {i.key for i in store.search(("n",), refresh_ttl=False)} == {"default", "forever", "two"}
    clock.advance(seconds=15)  # 115 s
    assert store.get(("n",), "default") is None
    assert {i.key for i in store.search(("n",), query="python")} == {"forever", "two"}  # "two" now lives to 235 s
    clock.advance(seconds=10)
    assert store.get(("n", "deep"), "two") is not None
    clock.advance(minutes=3)
    assert store.get(("n", "deep"), "two") is None
    assert store.list_namespaces() == [("n",)]
    assert _rows(store, "items") == 3 and _rows(store, "vectors") == 3
    assert store.sweep_ttl() == 2
    assert _rows(store, "items") == 1 and _rows(store, "vectors") == 1
    assert store.sweep_ttl() == 0


def test_refresh_on_read_can_be_turned_off_and_an_expired_item_put_again_starts_afresh(
    db_url: str, clock: Clock
) -> None:
    with SQLStore.from_conn_string(db_url, ttl={"default_ttl": 1.0, "refresh_on_read": False}, clock=clock) as store:
        store.setup()
        store.put(("n",), "k", {"v": 1})
        first = store.get(("n",), "k")
        clock.advance(seconds=40)
        assert store.get(("n",), "k") is not None
        clock.advance(seconds=30)
        assert store.get(("n",), "k") is None, "reads did not extend the TTL"
        store.put(("n",), "k", {"v": 2})
        again = store.get(("n",), "k")
    assert first is not None and again is not None
    assert again.created_at > first.created_at and again.value == {"v": 2}


def test_the_sweeper_thread_removes_expired_items_until_stopped(store: SQLStore, clock: Clock) -> None:
    for i in range(3):
        store.put(("s",), str(i), {"text": "rain"}, ttl=0.5)
    store.put(("s",), "keep", {"text": "sun"}, ttl=None)
    done = store.start_ttl_sweeper(sweep_interval_minutes=0.0005)  # every 30 ms
    clock.advance(minutes=1)
    deadline = time.monotonic() + 5
    while _rows(store, "items") > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.stop_ttl_sweeper(timeout=5)
    assert done.done() and _rows(store, "items") == 1 and _rows(store, "vectors") == 1


def test_the_sweeper_sweeps_at_start_not_one_interval_later(store: SQLStore, clock: Clock) -> None:
    store.put(("s",), "gone", {"text": "rain"}, ttl=0.5)
    clock.advance(minutes=1)
    store.start_ttl_sweeper(sweep_interval_minutes=60)
    deadline = time.monotonic() + 5
    while _rows(store, "items") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.stop_ttl_sweeper(timeout=5) and _rows(store, "items") == 0


async def test_the_async_sweeper_task_removes_expired_items(db_url: str, clock: Clock) -> None:
    async with SQLStore.from_conn_string(db_url, clock=clock) as store:
        await store.asetup()
        await store.aput(("s",), "gone", {"v": 1}, ttl=0.5)
        task = await store.astart_ttl_sweeper(sweep_interval_minutes=0.0005)
        clock.advance(minutes=1)
        for _ in range(250):
            if not store.list_namespaces() and await _araw_count(store) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _araw_count(store) == 0
        assert await store.astop_ttl_sweeper(timeout=5) and task.done()


async def _araw_count(store: SQLStore) -> int:
    async with store.db.async_engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(store.tables.items))).scalar_one())


def test_namespaces_and_keys_of_ten_thousand_characters_work(store: SQLStore) -> None:
    long_label = "ü" * 10_000
    deep = ("users", long_label, "prefs")
    key = "k" * 10_000
    store.put(deep, key, {"text": "cat"})
    store.put(("users", long_label + "x"), "k", {"text": "dog"})
    store.put(("users", "short"), "k", {"text": "sun"})
    assert store.get(deep, key) is not None
    assert [i.key for i in store.search(("users", long_label))] == [key]
    assert [i.key for i in store.search(deep, query="cat")] == [key]
    assert len(store.search(("users",))) == 3
    assert store.list_namespaces(prefix=("users", long_label)) == [deep]
    assert store.list_namespaces(suffix=("prefs",)) == [deep]
    assert store.list_namespaces(prefix=("users", "*", "prefs")) == [deep]
    assert store.list_namespaces(prefix=("users",), max_depth=2) == [
        ("users", "short"),
        ("users", long_label),
        ("users", long_label + "x"),
    ]


# --- semantic search ---------------------------------------------------------------------------

DOCS: list[tuple[str, dict[str, Any], Any]] = [
    ("py", {"text": "python python java", "kind": "code"}, None),
    ("java", {"text": "java", "kind": "code"}, None),
    ("pets", {"text": "cat dog", "kind": "life"}, None),
    ("food", {"text": "pizza pasta pizza", "kind": "life"}, None),
    ("notes", {"text": "rain", "notes": ["sun", "python"], "kind": "life"}, ["notes[*]"]),
    ("plain", {"text": "python", "kind": "code"}, False),
]


def _load(store: Any) -> None:
    for key, value, index in DOCS:
        store.put(("docs", key[0]), key, value, index=index)


def _ranked(results: list[Any]) -> list[tuple[str, float | None]]:
    return [(r.key, None if r.score is None else round(r.score, 5)) for r in results]


def test_semantic_search_ranks_like_the_reference_store(store: SQLStore) -> None:
    reference = InMemoryStore(index=INDEX)  # type: ignore[arg-type]
    _load(store)
    _load(reference)
    ours = _ranked(store.search(("docs",), query="python", limit=10))
    theirs = _ranked(reference.search(("docs",), query="python", limit=10))
    assert ours[:2] == theirs[:2] == [("notes", 1.0), ("py", round(2 / 5**0.5, 5))]
    assert sorted(ours[2:5]) == sorted(theirs[2:5]) == [("food", 0.0), ("java", 0.0), ("pets", 0.0)]
    assert ours[5] == theirs[5] == ("plain", None), "unindexed items come last, unscored"
    assert _ranked(store.search(("docs",), query="java", filter={"kind": "code"}, limit=2)) == [
        ("java", 1.0),
        ("py", round(1 / 5**0.5, 5)),
    ]
    assert [r.key for r in store.search(("docs",), query="pasta pizza", limit=1)] == ["food"]
    assert [r.key for r in store.search(("docs",), query="python", limit=1, offset=1)] == ["py"]


def test_overwriting_or_deleting_an_item_replaces_or_drops_its_vectors(store: SQLStore) -> None:
    _load(store)
    store.put(("docs", "p"), "pets", {"text": "python"})
    assert {r.key for r in store.search(("docs",), query="python", limit=2)} == {"notes", "pets"}
    assert store.search(("docs", "p"), query="python")[0].score == pytest.approx(1.0)
    store.delete(("docs", "p"), "pets")
    assert _rows(store, "vectors") == 1 + 1 + 1 + 2  # py, java, food, notes (two texts)


def test_database_and_numpy_scoring_agree_where_both_exist(db_url: str, engine_name: str) -> None:
    with SQLStore.from_conn_string(db_url, index=INDEX, vector_scoring="numpy") as numpy_store:
        numpy_store.setup()
        _load(numpy_store)
        expected = _ranked(numpy_store.search(("docs",), query="python java cat", limit=10))
        in_database = engine_name == "postgresql" or (engine_name == "sqlite" and sqlite_vec_loadable())
        if not in_database:
            with pytest.raises(ConfigurationError, match="not possible"):
                SQLStore(numpy_store.db, index=INDEX, vector_scoring="database")
            return
        with SQLStore(numpy_store.db, index=INDEX, vector_scoring="database") as database_store:
            got = _ranked(database_store.search(("docs",), query="python java cat", limit=10))
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)


async def test_async_embedding_functions_serve_abatch(db_url: str) -> None:
    async with SQLStore.from_conn_string(db_url, index={**INDEX, "embed": aembed}) as store:
        await store.asetup()
        await store.aput(("a",), "1", {"text": "dog dog"})
        await store.aput(("a",), "2", {"text": "sun"})
        found = await store.asearch(("a",), query="dog")
    assert [(r.key, round(r.score or 0, 5)) for r in found] == [("1", 1.0), ("2", 0.0)]


# --- the seed's memory API -------------------------------------------------------------------


@pytest.fixture
async def memory_store(db_url: str) -> AsyncIterator[SQLStore]:
    async with SQLStore.from_conn_string(db_url) as s:
        await s.asetup()
        yield s


def test_memory_api_adds_idempotently_reads_searches_updates_and_deletes(memory_store: SQLStore) -> None:
    store = memory_store
    first = store.add_memory("app", "ann", "Likes 50% OFF_sales", ["shopping"])
    assert store.add_memory("app", "ann", "Likes 50% OFF_sales", ["shopping", "deals"]) == first
    store.add_memory("app", "ann", "Allergic to cats", ["health"])
    store.add_memory("app", "ann", "Likes 50 percent and more", [])
    store.add_memory("app", "bob", "Likes 50% off sales too", [])
    memories = store.read_memories("app", "ann")
    assert len(memories) == 3 and memories[-1].id == first and memories[-1].topics == ["shopping", "deals"]
    assert [m.content for m in store.read_memories("app", "ann", limit=1)] == ["Likes 50 percent and more"]
    assert [m.id for m in store.search_memories("app", "ann", "50% off_")] == [first], "% and _ are literal"
    assert [m.content for m in store.search_memories("app", "ann", "CATS")] == ["Allergic to cats"]
    assert store.search_memories("app", "ann", "5_%") == []
    store.update_memory("app", "ann", first, "Likes sales", ["deals"])
    assert store.search_memories("app", "ann", "likes sales")[0].id == first
    with pytest.raises(MemoryNotFoundError, match="no memory 'nope'"):
        store.update_memory("app", "ann", "nope", "x")
    store.delete_memory("app", "ann", first)
    with pytest.raises(MemoryNotFoundError):
        store.delete_memory("app", "ann", first)
    before = snapshot(store)
    with pytest.raises(MemoryNotFoundError):
        store.update_memory("app", "bob", first, "resurrected?")
    assert snapshot(store) == before
    assert store.clear_memories("app", "ann") == 2
    assert store.read_memories("app", "ann") == [] and len(store.read_memories("app", "bob")) == 1


async def test_memory_api_async_twins(memory_store: SQLStore) -> None:
    store = memory_store
    key = await store.aadd_memory("app", "ann", "Prefers tea", ["drinks"])
    assert await store.aadd_memory("app", "ann", "Prefers tea") == key
    await store.aupdate_memory("app", "ann", key, "Prefers green tea", ["drinks"])
    assert [m.content for m in await store.asearch_memories("app", "ann", "GREEN")] == ["Prefers green tea"]
    assert [m.id for m in await store.aread_memories("app", "ann")] == [key]
    await store.adelete_memory("app", "ann", key)
    assert await store.aclear_memories("app", "ann") == 0
