"""Real LangGraph graphs on every engine, through the sync and the async API.

Each scenario is what users do with a checkpointer: resume after a crash or a human
pause in a *new* saver instance, replay, fork with `update_state`, run subgraphs, pick
a durability mode, encrypt, use a `DeltaChannel`. Where it makes sense the run is
compared with the same run on LangGraph's own `InMemorySaver`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.types import Command, StateSnapshot

from checkpoint_sql import SQLSaver
from tests.graphs import Flaky, agent_graph, log_graph, parent_graph, question

pytestmark = pytest.mark.parametrize("api", ["sync", "async"], indirect=True)


class Api:
    """Drives a compiled graph through its sync or its async methods."""

    def __init__(self, name: str, db_url: str) -> None:
        self.name = name
        self.db_url = db_url

    @asynccontextmanager
    async def saver(self, **kwargs: Any) -> AsyncIterator[SQLSaver]:
        """A new saver instance on the test database, as a restarted process would open."""
        saver = SQLSaver.from_conn_string(self.db_url, **kwargs)
        if self.name == "sync":
            with saver:
                saver.setup()
                yield saver
        else:
            async with saver:
                await saver.asetup()
                yield saver

    async def invoke(self, graph: Any, value: Any, config: Any, **kwargs: Any) -> Any:
        if self.name == "sync":
            return graph.invoke(value, config, **kwargs)
        return await graph.ainvoke(value, config, **kwargs)

    async def state(self, graph: Any, config: Any, **kwargs: Any) -> StateSnapshot:
        if self.name == "sync":
            return graph.get_state(config, **kwargs)
        return await graph.aget_state(config, **kwargs)

    async def history(self, graph: Any, config: Any) -> list[StateSnapshot]:
        if self.name == "sync":
            return list(graph.get_state_history(config))
        return [s async for s in graph.aget_state_history(config)]

    async def update_state(self, graph: Any, config: Any, values: Any, as_node: str | None = None) -> Any:
        if self.name == "sync":
            return graph.update_state(config, values, as_node=as_node)
        return await graph.aupdate_state(config, values, as_node=as_node)


@pytest.fixture
def api(request: pytest.FixtureRequest, db_url: str) -> Api:
    return Api(request.param, db_url)


def shape(history: list[StateSnapshot]) -> list[tuple[Any, ...]]:
    """What must match between two savers: per checkpoint, newest first, its step,
    source, next nodes, values and interrupts (ids and timestamps differ)."""
    return [
        (
            s.metadata["step"],
            s.metadata["source"],
            s.next,
            s.values,
            tuple(i.value for t in s.tasks for i in t.interrupts),
        )
        for s in history
    ]


THREAD = {"configurable": {"thread_id": "conversation-1"}}


async def test_a_run_that_crashed_resumes_in_a_new_saver_instance(api: Api) -> None:
    async with api.saver() as saver:
        graph = agent_graph(Flaky(failures=1)).compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="tool worker crashed"):
            await api.invoke(graph, question("red green"), THREAD)

    async with api.saver() as saver:  # the process restarted
        graph = agent_graph().compile(checkpointer=saver)
        assert (await api.state(graph, THREAD)).next == ("tools",)
        result = await api.invoke(graph, None, THREAD)
    assert result["messages"][-1].content == "answer: RED, GREEN"
    assert result["tool_calls"] == 2


async def test_an_interrupted_run_resumes_with_command_in_a_new_saver_instance(api: Api) -> None:
    async with api.saver() as saver:
        graph = agent_graph(approval=True).compile(checkpointer=saver)
        paused = await api.invoke(graph, question("blue"), THREAD)
    assert paused["__interrupt__"][0].value == {"question": "run lookup('blue')?"}

    async with api.saver() as saver:
        graph = agent_graph(approval=True).compile(checkpointer=saver)
        state = await api.state(graph, THREAD)
        assert state.next == ("approve",)
        assert state.tasks[0].interrupts[0].value == {"question": "run lookup('blue')?"}
        result = await api.invoke(graph, Command(resume="yes"), THREAD)
    assert result["messages"][-1].content == "answer: BLUE"


async def test_history_matches_in_memory_saver_step_for_step(api: Api) -> None:
    memory = agent_graph(approval=True).compile(checkpointer=InMemorySaver())
    for value in (question("one two"), Command(resume="yes"), Command(resume="yes")):
        memory.invoke(value, THREAD)

    async with api.saver() as saver:
        graph = agent_graph(approval=True).compile(checkpointer=saver)
        for value in (question("one two"), Command(resume="yes"), Command(resume="yes")):
            await api.invoke(graph, value, THREAD)
        ours = await api.history(graph, THREAD)
    assert shape(ours) == shape(list(memory.get_state_history(THREAD)))
    assert len(ours) == 9  # input, 2 x (agent, approve, tools), final agent


async def test_replaying_an_earlier_checkpoint_reexecutes_from_there(api: Api) -> None:
    async with api.saver() as saver:
        graph = agent_graph().compile(checkpointer=saver)
        await api.invoke(graph, question("a b"), THREAD)
        history = await api.history(graph, THREAD)
        before_tools = next(s for s in reversed(history) if s.next == ("tools",))

        replayed = await api.invoke(graph, None, before_tools.config)
        after = await api.history(graph, THREAD)

    assert replayed["messages"][-1].content == "answer: A, B"
    new = [
        s
        for s in after
        if s.config["configurable"]["checkpoint_id"] not in {h.config["configurable"]["checkpoint_id"] for h in history}
    ]
    assert new, "replay wrote no checkpoint"
    oldest_new = min(new, key=lambda s: s.config["configurable"]["checkpoint_id"])
    assert (
        oldest_new.parent_config["configurable"]["checkpoint_id"]
        == before_tools.config["configurable"]["checkpoint_id"]
    )


async def test_update_state_forks_a_branch_visible_in_history(api: Api) -> None:
    async with api.saver() as saver:
        graph = agent_graph().compile(checkpointer=saver)
        await api.invoke(graph, question("x y"), THREAD)
        history = await api.history(graph, THREAD)
        fork_point = next(s for s in reversed(history) if s.next == ("tools",))

        forked = await api.update_state(graph, fork_point.config, question("z"), as_node="agent")
        branch = await api.invoke(graph, None, forked)
        after = await api.history(graph, THREAD)

    by_id = {s.config["configurable"]["checkpoint_id"]: s for s in after}
    fork = by_id[forked["configurable"]["checkpoint_id"]]
    assert fork.metadata["source"] == "update"
    assert fork.parent_config["configurable"]["checkpoint_id"] == fork_point.config["configurable"]["checkpoint_id"]
    children_of_fork_point = [
        s
        for s in after
        if s.parent_config
        and s.parent_config["configurable"]["checkpoint_id"] == fork_point.config["configurable"]["checkpoint_id"]
    ]
    assert len(children_of_fork_point) == 2, "the original path and the fork both start at the fork point"
    assert branch["messages"][-1].content.startswith("answer:")
    assert (
        after[0].config["configurable"]["checkpoint_id"]
        == (await api.history(graph, THREAD))[0].config["configurable"]["checkpoint_id"]
    )


async def test_a_subgraph_keeps_its_checkpoints_in_its_namespace_and_resumes(api: Api) -> None:
    async with api.saver() as saver:
        graph = parent_graph().compile(checkpointer=saver)
        paused = await api.invoke(graph, {"draft": "  essay ", "notes": []}, THREAD)
        assert paused["__interrupt__"][0].value == {"review": "essay (written)"}

        state = await api.state(graph, THREAD, subgraphs=True)
        sub_config = state.tasks[0].state.config
        assert sub_config["configurable"]["checkpoint_ns"].startswith("review_flow:")
        namespaces = {
            t.config["configurable"]["checkpoint_ns"]
            for t in saver.list({"configurable": {"thread_id": "conversation-1"}})
        }
        assert namespaces == {"", sub_config["configurable"]["checkpoint_ns"]}

    async with api.saver() as saver:
        graph = parent_graph().compile(checkpointer=saver)
        result = await api.invoke(graph, Command(resume="approved"), THREAD)
    assert result["draft"] == "essay (written) [approved]"
    assert result["notes"][-2:] == ["reviewed: approved", "published"]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_every_durability_mode_stores_what_in_memory_saver_stores(api: Api, durability: str) -> None:
    memory = agent_graph().compile(checkpointer=InMemorySaver())
    memory.invoke(question("p q r"), THREAD, durability=durability)

    async with api.saver() as saver:
        graph = agent_graph().compile(checkpointer=saver)
        result = await api.invoke(graph, question("p q r"), THREAD, durability=durability)
        ours = await api.history(graph, THREAD)
    assert result["messages"][-1].content == "answer: P, Q, R"
    assert shape(ours) == shape(list(memory.get_state_history(THREAD)))


async def test_encrypted_serializer_stores_ciphertext_and_round_trips(api: Api) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef")
    async with api.saver(serde=serde) as saver:
        graph = agent_graph(approval=True).compile(checkpointer=saver)
        await api.invoke(graph, question("secretword"), THREAD)
        await api.invoke(graph, Command(resume="yes"), THREAD)
        state = await api.state(graph, THREAD)
        tables = saver.tables
        with saver.db.sync_engine.connect() as conn:
            stored = [
                (row.type, bytes(row.blob or b""))
                for table in (tables.blobs, tables.writes)
                for row in conn.execute(sa.select(table.c.type, table.c.blob))
            ]
            bodies = [row.type for row in conn.execute(sa.select(tables.checkpoints.c.type))]
    assert state.values["messages"][-1].content == "answer: SECRETWORD"
    assert all(t.endswith("+aes") for t, _ in stored if t != "empty")
    assert all(t.endswith("+aes") for t in bodies)
    assert not any(b"secretword" in blob or b"SECRETWORD" in blob for _, blob in stored)


async def test_delta_channel_is_rebuilt_from_history_after_prune_and_copy(api: Api) -> None:
    expected = [f"entry-{i}" for i in range(7)]
    async with api.saver() as saver:
        graph = log_graph().compile(checkpointer=saver)
        result = await api.invoke(graph, {"log": [], "count": 7}, THREAD)
        assert result["log"] == expected
        assert (await api.state(graph, THREAD)).values["log"] == expected

        head = saver.get_tuple(THREAD)
        assert "log" not in head.checkpoint["channel_values"], "the head stores no value: it must be replayed"
        assert head.metadata["counters_since_delta_snapshot"]["log"][0] > 0

        saver.copy_thread("conversation-1", "conversation-2")
        copy = {"configurable": {"thread_id": "conversation-2"}}
        assert (await api.state(graph, copy)).values["log"] == expected

        if api.name == "sync":
            saver.prune(["conversation-1"], strategy="keep_latest")
        else:
            await saver.aprune(["conversation-1"], strategy="keep_latest")
        kept = list(saver.list(THREAD))
        assert 1 < len(kept) < len(await api.history(graph, copy)), "prune kept the chain back to the snapshot, no more"
        assert (await api.state(graph, THREAD)).values["log"] == expected

        more = await api.invoke(graph, {"count": 10}, THREAD)
        assert more["log"] == [f"entry-{i}" for i in range(10)]
