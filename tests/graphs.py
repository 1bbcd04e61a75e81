"""Small but real LangGraph graphs the tests drive: an agent/tool loop, a human
approval with `interrupt()`, a subgraph, and a `DeltaChannel` log.

No model is called: the "agent" is deterministic, so a run can be compared exactly
with the same run on LangGraph's `InMemorySaver`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    tool_calls: Annotated[int, operator.add]


def _agent(state: AgentState) -> dict[str, Any]:
    """Calls the `lookup` tool for each word of the question, then answers."""
    question = next(m for m in state["messages"] if isinstance(m, HumanMessage)).content
    words = str(question).split()
    done = sum(isinstance(m, ToolMessage) for m in state["messages"])
    if done < len(words):
        call = {"id": f"call-{done}", "name": "lookup", "args": {"word": words[done]}}
        return {"messages": [AIMessage(content="", tool_calls=[call], id=f"ai-{done}")]}
    found = [m.content for m in state["messages"] if isinstance(m, ToolMessage)]
    return {"messages": [AIMessage(content="answer: " + ", ".join(map(str, found)), id="ai-final")]}


def _route(state: AgentState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


class Flaky:
    """Makes the tool node fail its first `failures` calls, like a crashed worker."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    def __call__(self, state: AgentState) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("tool worker crashed")
        call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
        result = ToolMessage(content=call["args"]["word"].upper(), tool_call_id=call["id"], id=f"tool-{call['id']}")
        return {"messages": [result], "tool_calls": 1}


def agent_graph(tools: Any = None, *, approval: bool = False) -> StateGraph[Any]:
    """agent <-> tools loop; with `approval`, a human approves each tool call first."""
    builder = StateGraph(AgentState)
    builder.add_node("agent", _agent)
    builder.add_node("tools", tools or Flaky())
    builder.add_edge(START, "agent")
    if approval:
        builder.add_node("approve", _approve)
        builder.add_conditional_edges("agent", _route, {"tools": "approve", END: END})
        builder.add_edge("approve", "tools")
    else:
        builder.add_conditional_edges("agent", _route, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder


def _approve(state: AgentState) -> dict[str, Any]:
    call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
    decision = interrupt({"question": f"run lookup({call['args']['word']!r})?"})
    if decision != "yes":
        raise ValueError(f"tool call refused: {decision!r}")
    return {}


def question(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=text, id="human-0")], "tool_calls": 0}


# --- a subgraph with its own interrupt -------------------------------------------------


class ReviewState(TypedDict):
    draft: str
    notes: Annotated[list[str], operator.add]


def _write(state: ReviewState) -> dict[str, Any]:
    return {"draft": state["draft"] + " (written)", "notes": ["written"]}


def _review(state: ReviewState) -> dict[str, Any]:
    verdict = interrupt({"review": state["draft"]})
    return {"draft": f"{state['draft']} [{verdict}]", "notes": [f"reviewed: {verdict}"]}


def review_subgraph() -> Any:
    sub = StateGraph(ReviewState)
    sub.add_node("write", _write)
    sub.add_node("review", _review)
    sub.add_edge(START, "write")
    sub.add_edge("write", "review")
    sub.add_edge("review", END)
    return sub.compile()


def parent_graph() -> StateGraph[Any]:
    """prepare -> (review subgraph) -> publish; the subgraph's checkpoints live in
    their own namespace."""
    builder = StateGraph(ReviewState)
    builder.add_node("prepare", lambda s: {"draft": s["draft"].strip(), "notes": ["prepared"]})
    builder.add_node("review_flow", review_subgraph())
    builder.add_node("publish", lambda s: {"notes": ["published"]})
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "review_flow")
    builder.add_edge("review_flow", "publish")
    builder.add_edge("publish", END)
    return builder


# --- a DeltaChannel log ---------------------------------------------------------------


def _extend(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    return state + [item for batch in writes for item in batch]


class LogState(TypedDict):
    log: Annotated[list[str], DeltaChannel(_extend, snapshot_frequency=3)]
    count: int


def log_graph() -> StateGraph[Any]:
    """One node appending to a delta-stored log until it holds `count` entries."""
    builder = StateGraph(LogState)
    builder.add_node("step", lambda s: {"log": [f"entry-{len(s['log'])}"]})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if len(s["log"]) < s["count"] else END)
    return builder
