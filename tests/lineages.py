"""A database of real lineages for the admin tool's tests: what LangGraph writes when
agents pause, resume, fork, fail, fan out and run subgraphs, plus a DeltaChannel log.

Each thread is written by a real graph run, so the tool is tested against the rows
LangGraph actually produces rather than hand-made ones.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt

from checkpoint_sql import SQLSaver
from tests.conftest import splitting_every_list
from tests.graphs import Flaky, agent_graph, log_graph, parent_graph, question

LOG = [f"entry-{i}" for i in range(7)]


class FanState(TypedDict):
    items: list[str]
    out: Annotated[list[str], operator.add]


def _fan(state: FanState) -> list[Send]:
    return [Send("work", {"items": [item], "out": []}) for item in state["items"]]


def _work(state: FanState) -> dict[str, Any]:
    item = state["items"][0]
    if item == "b":
        interrupt(f"approve {item}?")
    return {"out": [item.upper()]}


def fanout_graph() -> StateGraph[Any]:
    """One Send per item; the task for "b" waits for a human."""
    builder = StateGraph(FanState)
    builder.add_node("work", _work)
    builder.add_conditional_edges(START, _fan, ["work"])
    return builder


def cfg(thread_id: str, **metadata: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if metadata:
        config["metadata"] = metadata
    return config


GRAPHS: dict[str, Callable[[], StateGraph[Any]]] = {
    "agent": lambda: agent_graph(approval=True),
    "review": parent_graph,
    "log": log_graph,
    "crash": agent_graph,
    "fanout": fanout_graph,
}


def compiled(name: str, saver: BaseCheckpointSaver[Any]) -> Any:
    return GRAPHS[name]().compile(checkpointer=saver)


def write_lineages(saver: BaseCheckpointSaver[Any]) -> None:
    """Five threads: ``agent`` (two human approvals, then a fork by update_state),
    ``review`` (paused inside a subgraph), ``log`` (a DeltaChannel), ``crash`` (a
    failed tool task) and ``fanout`` (Sends, one interrupted)."""
    agent = compiled("agent", saver)
    config = cfg("agent", user="alice")
    agent.invoke(question("red green"), config)
    agent.invoke(Command(resume="yes"), config)
    history = list(agent.get_state_history(config))
    first_pause = next(s for s in reversed(history) if s.next == ("approve",))
    agent.update_state(first_pause.config, {"messages": [HumanMessage("blue", id="human-0")]}, as_node="agent")

    compiled("review", saver).invoke({"draft": "  essay ", "notes": []}, cfg("review", user="bob"))
    compiled("log", saver).invoke({"log": [], "count": len(LOG)}, cfg("log"))
    with pytest.raises(RuntimeError, match="tool worker crashed"):
        agent_graph(Flaky(failures=1)).compile(checkpointer=saver).invoke(question("x"), cfg("crash"))
    compiled("fanout", saver).invoke({"items": ["a", "b", "c"], "out": []}, cfg("fanout"))


def build(url: str) -> None:
    """The lineages in a new database at `url`, their lists split as the suite stores
    them (module-scoped databases are built before the per-test fixture applies)."""
    with splitting_every_list(), SQLSaver.from_conn_string(url) as saver:
        saver.setup()
        write_lineages(saver)
