"""The main job: a LangGraph agent that is paused, resumed, replayed and forked.

``python -m checkpoint_sql demo`` runs a real `StateGraph` (an agent that asks a
human before each tool call) on the embedded SQLite database, or on ``--url``. Each
stage opens a *new* saver, the way a restarted process would, so what carries the run
from one stage to the next is only what the database holds.
"""

from __future__ import annotations

import operator
from datetime import datetime, timezone
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from rich.console import Console

from checkpoint_sql.admin import history
from checkpoint_sql.saver.sql_saver import SQLSaver

WEATHER = {"paris": "14°C, light rain", "tokyo": "22°C, clear", "oslo": "3°C, snow"}


class TripState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    lookups: Annotated[int, operator.add]


def agent(state: TripState) -> dict[str, Any]:
    """A stand-in for a model: one weather lookup per city asked about, then an answer."""
    asked = str(next(m for m in state["messages"] if isinstance(m, HumanMessage)).content)
    cities = [c for c in asked.lower().replace("?", "").replace(",", " ").split() if c in WEATHER]
    answers = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    if len(answers) < len(cities):
        city = cities[len(answers)]
        call = {"id": f"call-{len(answers)}", "name": "weather", "args": {"city": city}}
        return {"messages": [AIMessage(content=f"Let me check {city.title()}.", tool_calls=[call])]}
    summary = "; ".join(f"{m.name}: {m.content}" for m in answers)
    return {"messages": [AIMessage(content=f"Pack for: {summary}")]}


def approve(state: TripState) -> dict[str, Any]:
    """Human in the loop: the run stops here until someone answers."""
    call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
    answer = interrupt(f"May I look up the weather in {call['args']['city'].title()}?")
    if answer != "yes":
        return {
            "messages": [ToolMessage(content="not allowed", name=call["args"]["city"].title(), tool_call_id=call["id"])]
        }
    return {}


def tools(state: TripState) -> dict[str, Any]:
    call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
    city = call["args"]["city"]
    return {
        "messages": [ToolMessage(content=WEATHER[city], name=city.title(), tool_call_id=call["id"])],
        "lookups": 1,
    }


def _after_agent(state: TripState) -> str:
    last = state["messages"][-1]
    return "approve" if isinstance(last, AIMessage) and last.tool_calls else END


def _after_approve(state: TripState) -> str:
    return "agent" if isinstance(state["messages"][-1], ToolMessage) else "tools"


def build_graph(checkpointer: SQLSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(TripState)
    builder.add_node("agent", agent)
    builder.add_node("approve", approve)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", _after_agent, ["approve", END])
    builder.add_conditional_edges("approve", _after_approve, ["agent", "tools"])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _last_words(result: dict[str, Any]) -> str:
    if "__interrupt__" in result:
        return f"⏸  paused: {result['__interrupt__'][0].value!r}"
    return f"✔  {result['messages'][-1].content}"


def _short(config: Any) -> str:
    return str(config["configurable"]["checkpoint_id"])[-12:]


def run(url: str | None = None, *, thread_id: str | None = None, console: Console | None = None) -> str:
    """Run the demo; returns the thread id it used."""
    out = console or Console()
    thread_id = thread_id or f"trip-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}

    with SQLSaver.from_conn_string(url) as saver:
        saver.setup()
        out.rule("[bold]checkpoint_sql demo")
        out.print(f"database: {saver.db.masked_url}\nthread:   {thread_id}\n")
        out.print("[bold]1. Start a run[/] — the agent wants a tool, and asks a human first")
        result = build_graph(saver).invoke(
            {"messages": [HumanMessage("Weather in Paris and Tokyo?")], "lookups": 0}, config
        )
        out.print("   " + _last_words(result))
        out.print("   (the process stops here; the saver is closed)\n")

    with SQLSaver.from_conn_string(url) as saver:
        graph = build_graph(saver)
        out.print("[bold]2. Resume in a fresh saver[/], answering each question with Command(resume='yes')")
        out.print(f"   restored state: next={graph.get_state(config).next}")
        _answer_until_done(graph, graph.invoke(Command(resume="yes"), config), config, out)

    with SQLSaver.from_conn_string(url) as saver:
        graph = build_graph(saver)
        snapshots = list(graph.get_state_history(config))
        tokyo = next(
            s for s in reversed(snapshots) if s.next == ("tools",) and "Tokyo" in str(s.values["messages"][-1].content)
        )
        out.print(f"[bold]3. Replay[/] from checkpoint …{_short(tokyo.config)}, just before the Tokyo lookup")
        result = graph.invoke(None, tokyo.config)
        out.print("   " + _last_words(result) + "  (re-executed from there)\n")

        first = next(s for s in reversed(snapshots) if s.metadata and s.metadata.get("step") == 0)
        out.print(f"[bold]4. Fork[/] at …{_short(first.config)} with update_state: ask about Oslo instead")
        question = HumanMessage("Weather in Oslo?", id=first.values["messages"][0].id)  # same id: replaces it
        fork = graph.update_state(first.config, {"messages": [question]})
        _answer_until_done(graph, graph.invoke(None, fork), config, out)

        out.print(
            "[bold]5. The thread's lineage[/] as `checkpoint-sql history` shows it: the replay and the fork branch off"
        )
        out.print(history.of_thread(saver, thread_id).render())
        out.print(f"\n   Explore it: checkpoint-sql show {thread_id}  ·  checkpoint-sql prune --keep-last 5 --dry-run")
    return thread_id


def _answer_until_done(
    graph: CompiledStateGraph[Any, Any, Any, Any], result: dict[str, Any], config: Any, out: Console
) -> None:
    """Say yes to every question the run stops on, printing each stop and the end."""
    while "__interrupt__" in result:
        out.print("   " + _last_words(result) + " → yes")
        result = graph.invoke(Command(resume="yes"), config)
    out.print("   " + _last_words(result) + "\n")
