"""4. Storage: bytes on disk per checkpoint, ours vs the official saver, on fresh
databases, for two states:

* **growing messages**: the agent conversation, turn after turn, on one thread;
* **large constant value**: a document of `document_bytes` set once, then `document_steps`
  steps that only bump a counter and append a short note.

Bytes are what the engine reports for the saver's tables, indexes and out-of-line values
included (SQLite: dbstat pages after a WAL checkpoint; PostgreSQL:
`pg_total_relation_size`; MariaDB: data_length + index_length after ANALYZE TABLE, in
16 kB pages), minus the same measure of the empty tables.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from benchmarks import bulk
from benchmarks.contenders import ENGINE_LABELS, OFFICIAL_NAMES, official_sync, ours
from benchmarks.graph import agent_graph, document, document_graph, question
from benchmarks.report import Outcome, count, ratio, size, table
from benchmarks.servers import Database, Databases
from benchmarks.settings import Settings

SCENARIOS = ("growing messages", "large constant value")


def _tables(db: Database, who: str) -> tuple[str, ...]:
    return bulk.OURS_TABLES if who == "ours" else bulk.OFFICIAL_TABLES[db.engine]


def _measure(db: Database, who: str) -> int:
    if db.engine == "sqlite":
        bulk.sqlite_checkpoint_wal(db)
    return sum(bulk.table_bytes(db, _tables(db, who)).values())


def _drive(saver: BaseCheckpointSaver[Any], scenario: str, settings: Settings) -> int:
    """Run the scenario on one thread; returns the number of checkpoints stored."""
    config: Any = {"configurable": {"thread_id": "storage"}}
    if scenario == SCENARIOS[0]:
        graph = agent_graph(settings.shape).compile(checkpointer=saver)
        for turn in range(settings.storage_turns):
            graph.invoke({"messages": [question("storage", turn, settings.shape)], "tool_calls": 0}, config)
    else:
        graph = document_graph(settings.document_steps).compile(checkpointer=saver)
        graph.invoke({"document": document(settings.document_bytes), "step": 0, "notes": []}, config)
    return sum(1 for _ in saver.list(config))


def run(engines: list[str], databases: Databases, settings: Settings) -> Outcome:
    outcome = Outcome("storage")
    results: dict[str, Any] = {}
    t = table(
        "Storage: bytes on disk per checkpoint (tables + indexes + out-of-line values, minus empty tables)",
        "engine",
        "state",
        "checkpoints",
        "ours total",
        "ours per checkpoint",
        "official",
        "official total",
        "official per checkpoint",
        "official ÷ ours",
    )
    for engine in engines:
        for scenario in SCENARIOS:
            label = "msgs" if scenario == SCENARIOS[0] else "doc"
            entry: dict[str, Any] = {}
            for who in ("ours", "official"):
                db = databases.create(engine, f"st_{label}_{who}")
                if who == "ours":
                    saver: BaseCheckpointSaver[Any] = ours(db)
                    close = saver.close  # type: ignore[attr-defined]
                else:
                    saver, close = official_sync(db)
                try:
                    empty = _measure(db, who)
                    checkpoints = _drive(saver, scenario, settings)
                    full = _measure(db, who)
                finally:
                    close()
                entry[who] = {"checkpoints": checkpoints, "bytes": full - empty, "empty_bytes": empty}
            o, f = entry["ours"], entry["official"]
            per_o = o["bytes"] / o["checkpoints"] if o["checkpoints"] else float("nan")
            per_f = f["bytes"] / f["checkpoints"] if f["checkpoints"] else float("nan")
            entry["ours"]["per_checkpoint"], entry["official"]["per_checkpoint"] = per_o, per_f
            results[f"{engine}/{scenario}"] = entry
            t.add_row(
                ENGINE_LABELS[engine],
                scenario,
                count(o["checkpoints"]),
                size(o["bytes"]),
                size(per_o),
                OFFICIAL_NAMES[engine][0],
                size(f["bytes"]),
                size(per_f),
                ratio(per_f / per_o if per_o > 0 else float("nan"), 1),
            )
    outcome.data = {
        "turns": settings.storage_turns,
        "document_bytes": settings.document_bytes,
        "document_steps": settings.document_steps,
        "results": results,
    }
    outcome.tables.append(t)
    outcome.notes.append(
        f"growing messages: {settings.storage_turns} turns of the agent loop on one thread; large constant value: a "
        f"{settings.document_bytes:,}-character document set once, then {settings.document_steps} steps changing a "
        "counter and a short list. MariaDB sizes move in 16 kB pages."
    )
    return outcome
