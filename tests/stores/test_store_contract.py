"""`SQLStore` against LangGraph's `InMemoryStore`, the reference behaviour of a
`BaseStore`: the same ops on both must give the same items, through `batch` and
through `abatch`, on every engine.

Search results are compared as sets where the stores order differently (the reference
returns items in insertion order, ours most recently updated first, as PostgresStore).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.store.base import GetOp, Item, ListNamespacesOp, MatchCondition, Op, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from checkpoint_sql import SQLStore

ITEMS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("docs",), "a", {"n": 1, "color": "red", "tags": ["a", "b"], "meta": {"size": "L", "w": 2}, "flag": True}),
    (("docs",), "b", {"n": 2, "color": "blue", "tags": ["a"], "meta": {"size": "S", "w": 1}, "opt": None}),
    (("docs", "2024"), "c", {"n": 2.0, "color": "red", "tags": [], "meta": {"size": "L", "w": 5}, "opt": 1}),
    (("docs", "2024", "q1"), "d", {"n": 3.5, "color": "green", "tags": ["b", "a"], "flag": False}),
    (("docs-old",), "e", {"n": -1, "color": "red", "meta": {"size": "L", "w": 0, "depth": {"x": 1}}}),
    (("users", "42", "prefs"), "f", {"n": 10, "color": "Red", "nested": [{"k": 1}, {"k": 2}]}),
    (("users", "7", "prefs"), "g", {"n": 0, "color": "", "unicode": "é∑😀"}),
    (("users", "7", "notes"), "h", {"n": 1e3, "color": "red", "opt": "x"}),
    (("a b", "ü"), "key with spaces/and ünïcode", {"n": 5}),
]

FILTERS: list[dict[str, Any]] = [
    {},
    {"color": "red"},
    {"color": "Red"},
    {"n": 2},
    {"n": 2.0},
    {"n": {"$gt": 1}},
    {"n": {"$gte": 2, "$lt": 5}},
    {"n": {"$lte": 1.5}},
    {"n": {"$ne": 2}},
    {"color": {"$ne": "red"}},
    {"color": {"$eq": "blue"}},
    {"opt": None},
    {"opt": {"$ne": None}},
    {"tags": ["a", "b"]},
    {"tags": []},
    {"tags": {"$eq": ["a", "b"]}},
    {"meta": {"size": "L"}},
    {"meta": {"size": "L", "w": 0, "depth": {"x": 1}}},
    {"meta": {"$eq": {"size": "L", "w": 2}}},
    {"meta": {"$ne": {"size": "S", "w": 1}}},
    {"meta": {"w": {"$gt": 1}}},
    {"flag": True},
    {"flag": False},
    {"missing": None},
    {"nested": [{"k": 1}, {"k": 2}]},
    {"nested": [{"k": 1}]},
    {"color": "red", "n": {"$gt": 1}},
    {"unicode": "é∑😀"},
]

PREFIXES: list[tuple[str, ...]] = [(), ("docs",), ("docs", "2024"), ("users",), ("users", "7"), ("nope",), ("a b",)]

MATCHES: list[dict[str, Any]] = [
    {},
    {"prefix": ("docs",)},
    {"prefix": ("users", "*", "prefs")},
    {"prefix": ("*", "7")},
    {"suffix": ("prefs",)},
    {"suffix": ("*", "prefs")},
    {"suffix": ("2024",)},
    {"prefix": ("users",), "suffix": ("notes",)},
    {"max_depth": 1},
    {"max_depth": 2},
    {"prefix": ("users",), "max_depth": 2},
    {"limit": 2},
    {"limit": 2, "offset": 3},
    {"max_depth": 1, "limit": 1, "offset": 1},
]


class Driver:
    """Runs ops on a store through `batch` or `abatch`."""

    def __init__(self, api: str) -> None:
        self.api = api

    async def run(self, store: Any, ops: list[Op]) -> list[Any]:
        return store.batch(ops) if self.api == "sync" else await store.abatch(ops)


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return Driver(str(request.param))


@pytest.fixture
async def stores(db_url: str, driver: Driver) -> AsyncIterator[tuple[SQLStore, InMemoryStore]]:
    ours = SQLStore.from_conn_string(db_url)
    await ours.asetup()
    reference = InMemoryStore()
    ops: list[Op] = [PutOp(ns, key, value) for ns, key, value in ITEMS]
    for store in (ours, reference):
        await driver.run(store, ops)
    yield ours, reference
    await ours.aclose()


def _item(item: Any) -> Any:
    if isinstance(item, Item):
        return (item.namespace, item.key, item.value)
    if isinstance(item, list):
        return sorted((_item(i) for i in item), key=repr)
    return item


async def _same(driver: Driver, stores: tuple[SQLStore, InMemoryStore], ops: list[Op]) -> list[Any]:
    ours, reference = stores
    got = [_item(r) for r in await driver.run(ours, ops)]
    expected = [_item(r) for r in await driver.run(reference, ops)]
    assert got == expected
    return got


async def test_get_returns_what_was_put(driver: Driver, stores: tuple[SQLStore, InMemoryStore]) -> None:
    ops: list[Op] = [GetOp(ns, key) for ns, key, _ in ITEMS] + [GetOp(("docs",), "zzz"), GetOp(("doc",), "a")]
    got = await _same(driver, stores, ops)
    assert got[0] == (("docs",), "a", ITEMS[0][2]) and got[-1] is None


async def test_search_by_prefix_and_filter_matches_the_reference(
    driver: Driver, stores: tuple[SQLStore, InMemoryStore]
) -> None:
    got = await _same(driver, stores, [SearchOp(prefix, f, limit=100) for prefix in PREFIXES for f in FILTERS])
    assert [len(r) for r in got][:3] == [len(ITEMS), 4, 1]


async def test_search_pages_cover_the_same_items(driver: Driver, stores: tuple[SQLStore, InMemoryStore]) -> None:
    ours, reference = stores
    pages = [SearchOp((), None, limit=3, offset=offset) for offset in range(0, 12, 3)]
    got = await driver.run(ours, pages)
    expected = await driver.run(reference, pages)
    assert [len(p) for p in got] == [len(p) for p in expected] == [3, 3, 3, 0]
    assert _item([i for p in got for i in p]) == _item([i for p in expected for i in p])
    newest_first = [i.updated_at for p in got for i in p]
    assert newest_first == sorted(newest_first, reverse=True)


async def test_list_namespaces_matches_the_reference(driver: Driver, stores: tuple[SQLStore, InMemoryStore]) -> None:
    ops: list[Op] = []
    for match in MATCHES:
        conditions = tuple(MatchCondition(kind, match[kind]) for kind in ("prefix", "suffix") if kind in match)
        ops.append(
            ListNamespacesOp(conditions, match.get("max_depth"), match.get("limit", 100), match.get("offset", 0))
        )
    got = await _same(driver, stores, ops)
    assert got[4] == [("users", "42", "prefs"), ("users", "7", "prefs")]


async def test_overwrite_delete_and_reads_before_writes_in_one_batch(
    driver: Driver, stores: tuple[SQLStore, InMemoryStore]
) -> None:
    ops: list[Op] = [
        GetOp(("docs",), "a"),
        PutOp(("docs",), "a", {"n": 100}),
        PutOp(("docs",), "b", None),
        GetOp(("docs",), "b"),
        PutOp(("docs",), "a", {"n": 200}),
        SearchOp(("docs",), {"n": {"$gte": 100}}),
        ListNamespacesOp(),
    ]
    got = await _same(driver, stores, ops)
    assert got[0][2] == ITEMS[0][2] and got[3] is not None, "reads see the store as it was before the batch"
    after: list[Op] = [
        GetOp(("docs",), "a"),
        GetOp(("docs",), "b"),
        SearchOp(("docs",), {"n": 200}),
        ListNamespacesOp(),
    ]
    got = await _same(driver, stores, after)
    assert got[0] == (("docs",), "a", {"n": 200}) and got[1] is None


async def test_convenience_methods_match_the_reference(stores: tuple[SQLStore, InMemoryStore]) -> None:
    ours, reference = stores
    for store in stores:
        await store.aput(("x", "y"), "k", {"v": [1, {"w": None}]})
        store.put(("x",), "k2", {"v": "two"})
        await store.adelete(("docs",), "e")
        store.delete(("docs",), "never-existed")
    assert _item(await ours.aget(("x", "y"), "k")) == _item(await reference.aget(("x", "y"), "k"))
    assert _item(ours.get(("docs",), "e")) == _item(reference.get(("docs",), "e")) is None
    assert _item(ours.search(("x",))) == _item(reference.search(("x",)))
    assert ours.list_namespaces(prefix=("x",)) == reference.list_namespaces(prefix=("x",)) == [("x",), ("x", "y")]
    assert await ours.alist_namespaces(suffix=("y",)) == [("x", "y")]


async def test_created_at_stays_and_updated_at_moves_on_overwrite(db_url: str) -> None:
    async with SQLStore.from_conn_string(db_url) as store:
        await store.asetup()
        await store.aput(("t",), "k", {"v": 1})
        first = await store.aget(("t",), "k")
        await store.aput(("t",), "k", {"v": 2})
        second = await store.aget(("t",), "k")
    assert first is not None and second is not None
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert first.created_at.tzinfo is not None
