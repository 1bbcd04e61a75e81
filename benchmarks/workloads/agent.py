"""1. Agent loop: a real `StateGraph` (agent <-> tool, growing message list) run for a few
threads x several turns, sync (`invoke`) and async (`ainvoke`), on every saver, on
`InMemorySaver`, and with no checkpointer at all.

The overhead of a saver is its median time minus `InMemorySaver`'s (LangGraph's own cost
of checkpointing, minus storage); the target compares our overhead with the official
saver's on the same engine and API (issue 9: ≤ 0.6), as the ratio of the median
overheads, with the spread of the per-repetition ratios.

Every sample also records the process CPU time (user + sys, all threads, so the
background threads LangGraph runs sync puts in count too) of the same run: the cost
target compares our CPU overhead over `InMemorySaver` with the official saver's the
same way (≤ 0.8). It is this process's CPU only: SQLite's work is in it (the library
runs in-process), a PostgreSQL or MariaDB server's is not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AnyMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from rich.markup import escape

from benchmarks import tracing
from benchmarks.contenders import ENGINE_LABELS, Kit
from benchmarks.graph import agent_graph, checkpoints_per_turn, question
from benchmarks.report import Outcome, Target, count, duration, ratio, spread, table
from benchmarks.runner import Case, Loop, Sample, atimed_cpu, cpus, interleave, timed_cpu, walls
from benchmarks.settings import Settings
from benchmarks.stats import Summary, overhead_ratio

OVERHEAD_LIMIT = 0.6
"""Our overhead over InMemorySaver ÷ the official saver's, wall time, every engine and API."""
CPU_LIMIT = 0.8
"""The same with process CPU time."""


class Contender:
    """One way of running the conversation: a saver (or none) through one API."""

    def __init__(
        self, key: str, engine: str, saver_name: str, api: str, saver: BaseCheckpointSaver[Any] | None
    ) -> None:
        self.key, self.engine, self.saver_name, self.api, self.saver = key, engine, saver_name, api, saver

    def graph(self, settings: Settings) -> Any:
        return agent_graph(settings.shape).compile(checkpointer=self.saver)


def _conversation(graph: Any, prefix: str, settings: Settings, *, stateless: bool) -> None:
    histories: dict[str, list[AnyMessage]] = {}
    for turn in range(settings.agent_turns):
        for t in range(settings.agent_threads):
            thread = f"{prefix}-{t}"
            ask = question(thread, turn, settings.shape)
            if stateless:  # no checkpointer: the caller carries the conversation
                history = histories.get(thread, [])
                result = graph.invoke({"messages": [*history, ask], "tool_calls": 0})
                histories[thread] = result["messages"]
            else:
                graph.invoke({"messages": [ask], "tool_calls": 0}, {"configurable": {"thread_id": thread}})


async def _aconversation(graph: Any, prefix: str, settings: Settings, *, stateless: bool) -> None:
    histories: dict[str, list[AnyMessage]] = {}
    for turn in range(settings.agent_turns):
        for t in range(settings.agent_threads):
            thread = f"{prefix}-{t}"
            ask = question(thread, turn, settings.shape)
            if stateless:
                history = histories.get(thread, [])
                result = await graph.ainvoke({"messages": [*history, ask], "tool_calls": 0})
                histories[thread] = result["messages"]
            else:
                await graph.ainvoke({"messages": [ask], "tool_calls": 0}, {"configurable": {"thread_id": thread}})


def contenders(kits: list[Kit]) -> list[Contender]:
    memory = InMemorySaver()
    found = [
        Contender("none/sync", "memory", "no checkpointer", "sync", None),
        Contender("memory/sync", "memory", "InMemorySaver", "sync", memory),
        Contender("none/async", "memory", "no checkpointer", "async", None),
        Contender("memory/async", "memory", "InMemorySaver", "async", memory),
    ]
    for kit in kits:
        found += [
            Contender(f"ours/{kit.engine}/sync", kit.engine, "SQLSaver", "sync", kit.ours),
            Contender(f"official/{kit.engine}/sync", kit.engine, kit.official_name, "sync", kit.official),
            Contender(f"ours/{kit.engine}/async", kit.engine, "SQLSaver", "async", kit.ours),
            Contender(f"official/{kit.engine}/async", kit.engine, kit.official_async_name, "async", kit.official_async),
        ]
    return found


def _sampler(contender: Contender, settings: Settings, loop: Loop) -> Callable[[], Sample]:
    graph = contender.graph(settings)
    serial = itertools.count()
    stateless = contender.saver is None
    prefix = contender.key.replace("/", "-")

    if contender.api == "sync":
        return lambda: timed_cpu(
            lambda: _conversation(graph, f"{prefix}-{next(serial)}", settings, stateless=stateless)
        )
    return lambda: atimed_cpu(
        loop, lambda: _aconversation(graph, f"{prefix}-{next(serial)}", settings, stateless=stateless)
    )


def run(kits: list[Kit], settings: Settings, loop: Loop, *, quiet: bool = False) -> Outcome:
    found = contenders(kits)
    cases = [Case(c.key, _sampler(c, settings, loop)) for c in found]
    runs = interleave(cases, reps=settings.agent_reps, warmup=settings.warmup, label="agent loop", quiet=quiet)
    samples = {k: walls(v) for k, v in runs.items()}
    cpu = {k: cpus(v) for k, v in runs.items()}
    counted = _count(kits, settings)

    per_sample = settings.agent_threads * settings.agent_turns
    checkpoints = per_sample * checkpoints_per_turn(settings.shape)
    outcome = Outcome("agent_loop")
    outcome.data = {
        "threads": settings.agent_threads,
        "turns": settings.agent_turns,
        "checkpoints_per_sample": checkpoints,
        "contenders": {
            c.key: {
                "saver": c.saver_name,
                "engine": c.engine,
                "api": c.api,
                "samples": samples[c.key],
                "cpu_samples": cpu[c.key],
            }
            for c in found
        },
        "summary": {k: Summary.of(v).as_dict() for k, v in samples.items()},
        "cpu_summary": {k: Summary.of(v).as_dict() for k, v in cpu.items()},
        "statements_per_sample": counted,
        "overhead": {},
        "cpu_overhead": {},
    }
    cost: list[Target] = []
    for api in ("sync", "async"):
        floor, cpu_floor = samples[f"memory/{api}"], cpu[f"memory/{api}"]
        t = table(
            f"Agent loop, {api} API: {settings.agent_threads} threads x {settings.agent_turns} turns "
            f"({checkpoints} checkpoints) per sample, {settings.agent_reps} interleaved samples",
            "saver",
            "median",
            "IQR",
            "overhead vs InMemorySaver",
            "per checkpoint",
            "ours ÷ official overhead",
            "CPU per checkpoint",
            "ours ÷ official CPU",
            "statements/turn",
        )
        for key in (f"none/{api}", f"memory/{api}"):
            c = next(x for x in found if x.key == key)
            s = Summary.of(samples[key])
            over = s.median - Summary.of(floor).median
            t.add_row(
                c.saver_name,
                duration(s.median),
                spread(s),
                duration(over),
                duration(over / checkpoints),
                "",
                duration(Summary.of(cpu[key]).median / checkpoints),
                "",
                "",
            )
        for kit in kits:
            ours_key, off_key = f"ours/{kit.engine}/{api}", f"official/{kit.engine}/{api}"
            point, per_rep = overhead_ratio(samples[ours_key], samples[off_key], floor)
            cpu_point, cpu_per_rep = overhead_ratio(cpu[ours_key], cpu[off_key], cpu_floor)
            outcome.data["overhead"][f"{kit.engine}/{api}"] = {"ratio": point, "per_rep": per_rep.as_dict()}
            outcome.data["cpu_overhead"][f"{kit.engine}/{api}"] = {
                "ratio": cpu_point,
                "per_rep": cpu_per_rep.as_dict(),
            }
            for key in (ours_key, off_key):
                c = next(x for x in found if x.key == key)
                s = Summary.of(samples[key])
                over = s.median - Summary.of(floor).median
                stmts = counted.get(key)
                ours_row = key == ours_key
                t.add_row(
                    f"{c.saver_name} ({ENGINE_LABELS[kit.engine]})",
                    duration(s.median),
                    spread(s),
                    duration(over),
                    duration(over / checkpoints),
                    _ratio_cell(point, per_rep) if ours_row else "",
                    duration(Summary.of(cpu[key]).median / checkpoints),
                    _ratio_cell(cpu_point, cpu_per_rep) if ours_row else "",
                    count(stmts["statements"] / per_sample) if stmts else "-",
                )
            official = kit.official_name if api == "sync" else kit.official_async_name
            label = ENGINE_LABELS[kit.engine]
            outcome.targets.append(
                Target(
                    "agent loop",
                    f"{label}, {api} API: SQLSaver's overhead over InMemorySaver ÷ {official}'s (wall time)",
                    point,
                    OVERHEAD_LIMIT,
                )
            )
            cost.append(
                Target(
                    "cost",
                    f"{label}, {api} API, agent loop: SQLSaver's CPU overhead over InMemorySaver ÷ {official}'s "
                    "(process CPU time per checkpoint, user + sys)",
                    cpu_point,
                    CPU_LIMIT,
                )
            )
        outcome.tables.append(t)
    outcome.targets += cost
    outcome.notes.append(
        "Overhead = median time - InMemorySaver's median time. Ratio: ratio of the median overheads, "
        "[p25-p75] of the per-repetition overhead ratios. CPU per checkpoint: the process CPU time (user + sys, "
        "every thread) of a sample ÷ its checkpoints, measured on the same runs as the wall time; ours ÷ official "
        "CPU: the ratio of the CPU overheads over InMemorySaver's, the same way (this process only: SQLite works "
        "in it, a PostgreSQL or MariaDB server does not). Statements per turn counted at the driver on the sync "
        "API (LangGraph's default durability 'async': puts run in a background thread)."
    )
    return outcome


def _ratio_cell(point: float, per_rep: Summary) -> str:
    return escape(f"{ratio(point)} [{per_rep.p25:.2f}-{per_rep.p75:.2f}]")


def _count(kits: list[Kit], settings: Settings) -> dict[str, dict[str, Any]]:
    """Statements one sample sends, per sync saver (counting twins, run once)."""
    result: dict[str, dict[str, Any]] = {}
    for kit in kits:
        for key, saver in (
            (f"ours/{kit.engine}/sync", kit.ours_counting),
            (f"official/{kit.engine}/sync", kit.official_counting),
        ):
            graph = agent_graph(settings.shape).compile(checkpointer=saver)
            _conversation(graph, f"count-{key.replace('/', '-')}-warm", settings, stateless=False)
            with tracing.window() as counted:
                _conversation(graph, f"count-{key.replace('/', '-')}", settings, stateless=False)
            result[key] = {k: v for k, v in counted.as_dict().items() if k != "texts"}
    return result
