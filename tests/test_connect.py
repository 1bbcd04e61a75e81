"""`connect()`: the saver and the companion stores on one database and one pool; their
migrations kept apart; and a real graph using both `checkpointer=` and `store=`."""

from __future__ import annotations

import threading
from typing import Any, TypedDict

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from checkpoint_sql import Database, SessionStore, ShortMemoryStore, SQLSaver, SQLStore, connect
from checkpoint_sql.core import migrate

SAVER_TABLES = {
    "cpsql_checkpoints",
    "cpsql_blobs",
    "cpsql_parts",
    "cpsql_writes",
    "cpsql_leases",
    "cpsql_alembic_version",
}
STORE_TABLES = {
    "cpsql_store_items",
    "cpsql_store_vectors",
    "cpsql_sessions",
    "cpsql_session_events",
    "cpsql_session_app_state",
    "cpsql_session_user_state",
    "cpsql_session_summaries",
    "cpsql_session_usage",
    "cpsql_short_memory",
    "cpsql_store_leases",
    "cpsql_alembic_version_stores",
}


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.sync_engine).get_table_names())


def test_connect_shares_one_database_and_setup_creates_every_table(db_url: str) -> None:
    with connect(db_url) as storage:
        parts = (storage.saver, storage.store, storage.sessions, storage.short_memory)
        assert all(part.db is storage.db for part in parts)
        storage.setup()
        storage.setup()  # idempotent
        assert _tables(storage.db) >= SAVER_TABLES | STORE_TABLES
        ours = storage.store.tables.metadata
        with storage.db.sync_engine.connect() as conn:
            opts = {
                "version_table": "cpsql_alembic_version_stores",
                "include_name": lambda name, kind, parent: kind != "table" or name in ours.tables,
            }
            context = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(context, ours) == []
            assert migrate.current(conn, storage.store.tables.migrations) == migrate.head(
                storage.store.tables.migrations
            )
    assert storage.db._owned == [], "close() disposed the engines it created"


def test_the_saver_and_the_stores_migrate_only_their_own_tables(db_url: str) -> None:
    with SQLSaver.from_conn_string(db_url) as saver:
        saver.setup()
        assert _tables(saver.db) == SAVER_TABLES
    with ShortMemoryStore.from_conn_string(db_url, table_prefix="other_") as memory:
        memory.setup()
        created = _tables(memory.db) - SAVER_TABLES
    assert created == {name.replace("cpsql_", "other_", 1) for name in STORE_TABLES}


def test_stores_run_on_borrowed_engines_and_leave_them_open(db_url: str) -> None:
    shared = Database(db_url)
    try:
        with SessionStore(shared.sync_engine, async_engine=shared.async_engine) as sessions:
            sessions.setup()
            sessions.create_session(app_name="a", user_id="u", session_id="s")
        with SQLStore(shared) as store, connect(shared) as storage:
            store.put(("n",), "k", {"v": 1})
            assert storage.store.get(("n",), "k") is not None
            assert storage.sessions.get_session(app_name="a", user_id="u", session_id="s") is not None
        with shared.sync_engine.connect() as conn:  # still usable: nothing disposed it
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        shared.close()


def test_concurrent_setup_of_the_stores_is_safe(db_url: str) -> None:
    """Four stores migrate one database at once; the migration lock lets one do it.
    (The database exists first: racing first connections to a new SQLite file is the
    engines' business, not the migration's.)"""
    touched = Database(db_url)
    with touched.sync_engine.connect():
        pass
    touched.close()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def setup() -> None:
        try:
            with SQLStore.from_conn_string(db_url) as store:
                start.wait()
                store.setup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=setup) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


# --- a graph with both a checkpointer and a store ----------------------------------------------


class Chat(TypedDict):
    text: str
    recalled: list[str]


def _remember(state: Chat, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
    user = config["configurable"]["user_id"]
    if state["text"].startswith("remember "):
        fact = state["text"].removeprefix("remember ")
        store.put(("memories", user), fact, {"fact": fact})
    return {"recalled": sorted(item.value["fact"] for item in store.search(("memories", user)))}


async def _aremember(state: Chat, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
    user = config["configurable"]["user_id"]
    if state["text"].startswith("remember "):
        fact = state["text"].removeprefix("remember ")
        await store.aput(("memories", user), fact, {"fact": fact})
    return {"recalled": sorted(item.value["fact"] for item in await store.asearch(("memories", user)))}


def _graph(node: Any) -> StateGraph[Chat]:
    builder = StateGraph(Chat)
    builder.add_node("remember", node)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder


def _config(thread: str, user: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, "user_id": user}}


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_graph_shares_memories_across_threads_through_the_store(db_url: str, api: str) -> None:
    async with connect(db_url) as storage:
        await storage.asetup()
        graph = _graph(_remember if api == "sync" else _aremember).compile(
            checkpointer=storage.saver, store=storage.store
        )

        async def run(text: str, thread: str, user: str) -> Chat:
            if api == "sync":
                return graph.invoke({"text": text, "recalled": []}, _config(thread, user))  # type: ignore[return-value]
            return await graph.ainvoke({"text": text, "recalled": []}, _config(thread, user))  # type: ignore[return-value]

        await run("remember likes tea", "thread-1", "ann")
        await run("remember lives in Oslo", "thread-1", "ann")
        other_thread = await run("what do you know?", "thread-2", "ann")
        other_user = await run("what do you know?", "thread-3", "bob")
        saved = storage.saver.get_tuple({"configurable": {"thread_id": "thread-2"}})
    assert other_thread["recalled"] == ["likes tea", "lives in Oslo"]
    assert other_user["recalled"] == []
    assert saved is not None and saved.checkpoint["channel_values"]["recalled"] == ["likes tea", "lives in Oslo"]
