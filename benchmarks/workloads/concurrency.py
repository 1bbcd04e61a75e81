"""5. Concurrency: `concurrent_runs` async graph runs at once (each its own thread, a few
turns) on one saver, in one event loop.

Our saver runs on a pool of `pool_size` connections (no overflow), against the official
async saver: `AsyncPostgresSaver` on an `AsyncConnectionPool` of the same size, and the
SQLite and MariaDB savers on the one connection they hold. `InMemorySaver` is the
ceiling of LangGraph itself in this process.

Targets (issue 9): our throughput ÷ the official async saver's ≥ 2 on PostgreSQL and
MariaDB (SQLite's is shown without a target), and ours ÷ InMemorySaver's ≥ 0.5 on every
engine.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks.contenders import Kit, ours
from benchmarks.graph import agent_graph, checkpoints_per_turn, question
from benchmarks.report import Outcome, Target, ratio_with_spread, spread, table
from benchmarks.runner import Case, Loop, atimed, interleave
from benchmarks.settings import Settings
from benchmarks.stats import Summary, paired
from checkpoint_sql import EngineOptions

OFFICIAL_LIMIT = 2.0
OFFICIAL_TARGET_ENGINES = ("postgresql", "mysql")
MEMORY_LIMIT = 0.5


async def _one(graph: Any, thread: str, settings: Settings) -> None:
    config = {"configurable": {"thread_id": thread}}
    for turn in range(settings.concurrent_turns):
        await graph.ainvoke({"messages": [question(thread, turn, settings.shape)], "tool_calls": 0}, config)


def _sampler(saver: BaseCheckpointSaver[Any], key: str, settings: Settings, loop: Loop) -> Any:
    graph = agent_graph(settings.shape).compile(checkpointer=saver)
    serial = itertools.count()
    runs = settings.concurrent_runs

    def sample() -> float:
        prefix = f"cc-{key.replace('/', '-')}-{next(serial)}"

        async def all_runs() -> None:
            await asyncio.gather(*(_one(graph, f"{prefix}-{i}", settings) for i in range(runs)))

        return atimed(loop, all_runs)

    return sample


def run(kits: list[Kit], settings: Settings, loop: Loop, *, quiet: bool = False) -> Outcome:
    outcome = Outcome("concurrency")
    pooled = EngineOptions(pool_size=settings.pool_size, max_overflow=0)
    cases = [Case("memory", _sampler(InMemorySaver(), "memory", settings, loop))]
    owned = []
    names = {"memory": "InMemorySaver"}
    official_pools: dict[str, str] = {}
    for kit in kits:
        saver = ours(kit.db, options=pooled)
        owned.append(saver)
        assert kit.official_async is not None
        cases.append(Case(f"ours/{kit.engine}", _sampler(saver, f"ours-{kit.engine}", settings, loop)))
        cases.append(
            Case(f"official/{kit.engine}", _sampler(kit.official_async, f"official-{kit.engine}", settings, loop))
        )
        names[f"ours/{kit.engine}"] = f"SQLSaver ({kit.label}, pool {settings.pool_size})"
        official_pools[kit.engine] = f"pool {settings.pool_size}" if kit.engine == "postgresql" else "one connection"
        names[f"official/{kit.engine}"] = f"{kit.official_async_name} ({kit.label}, {official_pools[kit.engine]})"
    try:
        samples = interleave(
            cases, reps=settings.concurrency_reps, warmup=settings.warmup, label="concurrency", quiet=quiet
        )
    finally:
        for saver in owned:
            loop.run(saver.aclose())
            saver.close()

    turns = settings.concurrent_runs * settings.concurrent_turns
    checkpoints = turns * checkpoints_per_turn(settings.shape)
    throughput = {k: [turns / v for v in values] for k, values in samples.items()}
    t = table(
        f"Concurrency: {settings.concurrent_runs} concurrent async runs x {settings.concurrent_turns} turns "
        f"({checkpoints} checkpoints) per sample, {settings.concurrency_reps} interleaved samples",
        "saver",
        "median wall time",
        "IQR",
        "turns/s",
        "checkpoints/s",
        "ours ÷ official throughput",
        "ours ÷ InMemorySaver throughput",
    )
    outcome.data = {
        "runs": settings.concurrent_runs,
        "turns": settings.concurrent_turns,
        "pool_size": settings.pool_size,
        "samples": samples,
        "throughput": {k: Summary.of(v).as_dict() for k, v in throughput.items()},
        "ratios": {},
        "ratios_to_memory": {},
    }
    what = f"async API, {settings.concurrent_runs} concurrent runs"
    vs_memory: list[Target] = []
    for case in cases:
        s = Summary.of(samples[case.key])
        tp = Summary.of(throughput[case.key])
        cell = memory_cell = ""
        if case.key.startswith("ours/"):
            engine = case.key.split("/", 1)[1]
            kit = next(k for k in kits if k.engine == engine)
            r = paired(throughput[case.key], throughput[f"official/{engine}"])
            m = paired(throughput[case.key], throughput["memory"])
            outcome.data["ratios"][engine] = r.as_dict()
            outcome.data["ratios_to_memory"][engine] = m.as_dict()
            cell, memory_cell = ratio_with_spread(r), ratio_with_spread(m)
            if engine in OFFICIAL_TARGET_ENGINES:
                outcome.targets.append(
                    Target(
                        "concurrency",
                        f"{kit.label}, {what}: SQLSaver's throughput (pool {settings.pool_size}) "
                        f"÷ {kit.official_async_name}'s ({official_pools[engine]})",
                        r.median,
                        OFFICIAL_LIMIT,
                        higher_is_better=True,
                    )
                )
            vs_memory.append(
                Target(
                    "concurrency",
                    f"{kit.label}, {what}: SQLSaver's throughput (pool {settings.pool_size}) ÷ InMemorySaver's",
                    m.median,
                    MEMORY_LIMIT,
                    higher_is_better=True,
                )
            )
        t.add_row(
            names[case.key],
            f"{s.median:.2f} s",
            spread(s),
            f"{tp.median:.1f}",
            f"{tp.median * checkpoints_per_turn(settings.shape):.0f}",
            cell,
            memory_cell,
        )
    outcome.targets += vs_memory
    outcome.tables.append(t)
    outcome.notes.append(
        "Throughput ratio: median [p25-p75] of per-sample ratios. One process, one event loop: the ceiling is "
        "LangGraph's own CPU cost (InMemorySaver's row)."
    )
    return outcome
