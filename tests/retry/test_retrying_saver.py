"""`RetryingSaver` is a complete checkpointer in its own right: LangGraph's conformance
suite passes on it with every capability, every method of the saver it wraps is there
(sync and async, `SQLSaver`'s extras included), and it wraps savers that are not ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from checkpoint_sql import RetryingSaver, RetryPolicy, SQLSaver
from tests.graphs import agent_graph, log_graph, question
from tests.helpers import checkpoint, config, put_chain
from tests.saver.test_graphs import shape


async def conformance(factory: Any, capabilities: set[str] | None = None) -> tuple[set[str], int, list[str]]:
    """Detected capabilities, tests passed and failures of a conformance run."""
    failures: list[str] = []

    def record(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}:\n{error}")

    report = await validate(factory, capabilities=capabilities, progress=ProgressCallbacks(on_test_result=record))
    detected = {name for name, result in report.results.items() if result.detected}
    return detected, sum(r.tests_passed for r in report.results.values()), failures


async def test_the_conformance_suite_passes_on_a_retrying_sqlsaver_with_every_capability(
    db_url: str, engine_name: str
) -> None:
    """The suite counts a capability only if its async method is overridden, so the
    wrapper overrides every one of them (and forwards it, retried)."""

    @checkpointer_test(name=f"RetryingSaver(SQLSaver[{engine_name}])")
    async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
        async with RetryingSaver.from_conn_string(db_url) as saver:
            await saver.asetup()
            yield saver

    detected, passed, failures = await conformance(factory)
    assert detected == {c.value for c in ALL_CAPABILITIES}
    assert not failures, "\n\n".join(failures)
    assert passed >= 80, f"only {passed} conformance tests ran"


async def test_the_conformance_suite_passes_on_a_retrying_in_memory_saver() -> None:
    """Any checkpointer can be wrapped. `InMemorySaver` has only the base capabilities,
    so only those are asked of the wrapper around it."""

    @checkpointer_test(name="RetryingSaver(InMemorySaver)")
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        yield RetryingSaver(InMemorySaver())

    _, passed, failures = await conformance(factory, {c.value for c in BASE_CAPABILITIES})
    assert not failures, "\n\n".join(failures)
    assert passed >= 50


def test_langgraphs_own_sqlite_saver_can_be_wrapped(tmp_path: Path) -> None:
    """A run on `SqliteSaver` behind the wrapper matches the same run on `InMemorySaver`."""
    reference = agent_graph().compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t"}}
    reference.invoke(question("red green"), thread)
    with SqliteSaver.from_conn_string(str(tmp_path / "official.db")) as official:
        saver = RetryingSaver(official)
        saver.setup()
        graph = agent_graph().compile(checkpointer=saver)
        graph.invoke(question("red green"), thread)
        assert shape(list(graph.get_state_history(thread))) == shape(list(reference.get_state_history(thread)))


# --- SQLSaver's extras, through the wrapper ------------------------------------------------


@pytest.fixture
async def wrapped(tmp_path: Path) -> AsyncIterator[RetryingSaver[str]]:
    async with RetryingSaver.from_conn_string(f"sqlite:///{tmp_path}/extras.db") as saver:
        saver.setup()
        await saver.asetup()  # idempotent, like the inner one
        yield saver


async def test_put_full_stores_a_checkpoint_with_its_writes_sync_and_async(wrapped: RetryingSaver[str]) -> None:
    first = checkpoint({"a": 1})
    stored = wrapped.put_full(config("t"), first, {"step": 0}, {"a": 1}, [("task", "a", 2)])
    second = checkpoint({"a": 2}, {"a": 2})
    await wrapped.aput_full(stored, second, {"step": 1}, {"a": 2}, [("task", "a", 3, "path")])
    latest = await wrapped.aget_tuple(config("t"))
    assert latest is not None and latest.checkpoint["id"] == second["id"]
    assert [w[1:] for w in latest.pending_writes or []] == [("a", 3)]
    assert [t.checkpoint["id"] for t in wrapped.list(config("t"))] == [second["id"], first["id"]]


async def test_delete_lineage_deletes_the_whole_thread_sync_and_async(wrapped: RetryingSaver[str]) -> None:
    put_chain(wrapped.inner, "one", 2)  # type: ignore[arg-type]
    put_chain(wrapped.inner, "two", 2)  # type: ignore[arg-type]
    wrapped.delete_lineage("one")
    await wrapped.adelete_lineage("two")
    assert list(wrapped.list(None)) == []


async def test_delta_channel_history_prune_and_copy_answer_as_the_inner_saver_does(
    wrapped: RetryingSaver[str],
) -> None:
    graph = log_graph().compile(checkpointer=wrapped)
    thread = {"configurable": {"thread_id": "log"}}
    await graph.ainvoke({"log": [], "count": 7}, thread)
    latest = await wrapped.aget_tuple(thread)
    assert latest is not None
    history = wrapped.get_delta_channel_history(config=latest.config, channels=["log"])
    assert history == wrapped.inner.get_delta_channel_history(config=latest.config, channels=["log"])
    assert await wrapped.aget_delta_channel_history(config=latest.config, channels=["log"]) == history

    await wrapped.acopy_thread("log", "copy")
    wrapped.prune(["log"])
    await wrapped.aprune(["copy"], strategy="delete")
    assert (await graph.aget_state(thread)).values["log"] == [f"entry-{n}" for n in range(7)]
    assert list(wrapped.list(config("copy"))) == []


def test_versions_and_serializer_are_the_inner_savers(wrapped: RetryingSaver[str]) -> None:
    assert wrapped.serde is wrapped.inner.serde
    assert wrapped.get_next_version(None, None).startswith(f"{1:032}.")
    assert wrapped.config_specs == wrapped.inner.config_specs


def test_the_msgpack_allowlist_langgraph_hands_over_reaches_the_inner_saver(tmp_path: Path) -> None:
    """LangGraph passes an allowlist to the checkpointer when it compiles a graph; the
    inner saver decodes the values, so it is the one that must learn it."""
    serde = JsonPlusSerializer(allowed_msgpack_modules=[("datetime", "datetime")])
    with SQLSaver(f"sqlite:///{tmp_path}/allow.db", serde=serde) as inner:
        wrapped = RetryingSaver(inner)
        allowed = wrapped.with_allowlist({("tests", "graphs", "AgentState")})
        assert isinstance(allowed, RetryingSaver) and allowed.policy is wrapped.policy
        assert allowed.inner is not inner and allowed.inner.serde is not serde
        assert allowed.serde is allowed.inner.serde
        assert wrapped.with_allowlist(set()) is wrapped, "nothing new to allow: the same saver"


def test_the_one_line_way_and_the_shared_policy_way_give_the_same_saver(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/one-line.db"
    with RetryingSaver.from_conn_string(url, table_prefix="app_") as one_line:
        assert isinstance(one_line.inner, SQLSaver) and one_line.inner.tables.prefix == "app_"
        assert one_line.policy == RetryPolicy()
        assert repr(one_line) == f"RetryingSaver(SQLSaver({url!r}, table_prefix='app_'), max_retries=3)"
    shared = RetryPolicy(max_retries=5, base_delay=0.2)
    with SQLSaver(url) as inner:
        assert RetryingSaver(inner, policy=shared).policy is shared
        assert RetryingSaver(inner, max_retries=5, base_delay=0.2).policy == shared


def test_an_extra_the_inner_saver_lacks_says_so() -> None:
    saver = RetryingSaver(InMemorySaver())
    with pytest.raises(NotImplementedError, match="InMemorySaver has no put_full"):
        saver.put_full(config("t"), checkpoint(), {}, {}, [])
    saver.setup()  # nothing to set up: no error
    saver.delete_lineage("t")  # falls back to delete_thread
