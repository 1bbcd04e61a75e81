"""3. History length: `get_tuple` (latest, and by id deep in the thread) and
`list(limit=10)` on threads of 10, 1k, 10k (and, with ``--large``, 100k) checkpoints,
all present at once in one table (with ``--large``, padded to ~1M rows with other
threads), so that every size is measured side by side, interleaved.

Each thread starts with one real conversation turn stored through the saver; the
older checkpoints are copies of its first checkpoint made in SQL (`bulk.grow_history`).
Ours, the official sync saver and the replay floor (our statements on the bare driver)
are measured; the target is ours at the largest size ÷ ours at the smallest.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from benchmarks import bulk, tracing
from benchmarks.contenders import Kit
from benchmarks.fixtures import checkpoint_ids, load, thread_config
from benchmarks.graph import Recorded
from benchmarks.report import Outcome, Target, count, duration, ratio_with_spread, spread, table
from benchmarks.runner import Case, Loop, interleave, timed_each
from benchmarks.settings import Settings
from benchmarks.stats import Summary, paired
from checkpoint_sql.core.ids import key_of

OPS = ("get_tuple (latest)", "get_tuple (by id, mid-thread)", "list (limit=10)")
FLAT_LIMIT = 1.2
FILLER_PER_THREAD = 1_000
WARM_CALLS = 6


def _fake_middle(size: int, genuine: int) -> str | None:
    fakes = size - genuine
    return None if fakes <= 0 else f"00000000-0000-6000-8000-{max(1, fakes // 2):012d}"


def _call(saver: BaseCheckpointSaver[Any], op: str, thread: str, middle: str) -> None:
    if op == OPS[0]:
        saver.get_tuple(thread_config(thread))
    elif op == OPS[1]:
        saver.get_tuple(thread_config(thread, middle))
    else:
        list(saver.list(thread_config(thread), limit=10))


def run(kits: list[Kit], recorded: Recorded, settings: Settings, loop: Loop, *, quiet: bool = False) -> Outcome:
    outcome = Outcome("history")
    genuine = len(recorded.puts)
    root = checkpoint_ids(recorded)[0]
    sizes = [s for s in settings.history_sizes if s >= genuine]
    cases: list[Case[float]] = []
    build: dict[str, dict[str, float]] = {}
    counted: dict[str, dict[str, Any]] = {}
    rows: dict[str, dict[str, int]] = {}

    for kit in kits:
        e = kit.engine
        build[e] = {}
        counted[e] = {}
        ours_table, official_table = "cpsql_checkpoints", "checkpoints"
        for size in sizes:
            thread = f"hist-{size}"
            start = time.perf_counter()
            load(kit.ours, recorded, thread)
            bulk.grow_history(
                kit.db, ours_table, {"thread_key": key_of(thread), "ns_key": key_of("")}, root, size - genuine
            )
            load(kit.official, recorded, thread)
            bulk.grow_history(
                kit.official_db, official_table, {"thread_id": thread, "checkpoint_ns": ""}, root, size - genuine
            )
            build[e][str(size)] = time.perf_counter() - start
        if settings.history_table_rows:
            start = time.perf_counter()
            filler = max(0, settings.history_table_rows - sum(sizes))
            threads = filler // FILLER_PER_THREAD
            bulk.add_filler(
                kit.db,
                ours_table,
                {"thread_key": key_of(f"hist-{sizes[0]}"), "ns_key": key_of("")},
                root,
                threads,
                FILLER_PER_THREAD,
                ours=True,
            )
            bulk.add_filler(
                kit.official_db,
                official_table,
                {"thread_id": f"hist-{sizes[0]}", "checkpoint_ns": ""},
                root,
                threads,
                FILLER_PER_THREAD,
                ours=False,
            )
            build[e]["filler"] = time.perf_counter() - start
        _analyze(kit)
        rows[e] = {
            "ours": bulk.row_count(kit.db, ours_table),
            "official": bulk.row_count(kit.official_db, official_table),
        }

        for size in sizes:
            thread, middle = f"hist-{size}", _fake_middle(size, genuine) or root
            for op in OPS:
                # capture ours' statements (counting twin) for the replay floor, count both savers
                for _ in range(WARM_CALLS):
                    _call(kit.ours_counting, op, thread, middle)
                    _call(kit.official_counting, op, thread, middle)
                with tracing.window(capture=True) as ours_c:
                    _call(kit.ours_counting, op, thread, middle)
                with tracing.window() as off_c:
                    _call(kit.official_counting, op, thread, middle)
                counted[e][f"{size}/{op}"] = {
                    "ours": {k: v for k, v in ours_c.as_dict().items() if k != "texts"},
                    "official": {k: v for k, v in off_c.as_dict().items() if k != "texts"},
                }
                statements = ours_c.captured
                n = settings.history_calls

                def ours_sample(o: str = op, t: str = thread, m: str = middle, s: Any = kit.ours, n: int = n) -> float:
                    return timed_each(lambda _: _call(s, o, t, m), n)

                def official_sample(
                    o: str = op, t: str = thread, m: str = middle, s: Any = kit.official, n: int = n
                ) -> float:
                    return timed_each(lambda _: _call(s, o, t, m), n)

                def floor_sample(st: list[tracing.Captured] = statements, raw: Any = kit.raw, n: int = n) -> float:
                    return timed_each(lambda _: tracing.replay(raw, st), n)

                cases += [
                    Case(f"{e}/ours/{op}/{size}", ours_sample),
                    Case(f"{e}/official/{op}/{size}", official_sample),
                    Case(f"{e}/floor/{op}/{size}", floor_sample),
                ]

    samples = interleave(cases, reps=settings.history_reps, warmup=settings.warmup, label="history", quiet=quiet)

    smallest, largest = sizes[0], sizes[-1]
    outcome.data = {
        "sizes": sizes,
        "table_rows": rows,
        "build_seconds": build,
        "counted": counted,
        "samples": samples,
        "summary": {k: Summary.of(v).as_dict() for k, v in samples.items()},
        "growth": {},
    }
    for kit in kits:
        e = kit.engine
        t = table(
            f"History length, {kit.label}: median per call ({settings.history_reps} interleaved samples of "
            f"{settings.history_calls} calls, IQR); tables hold {rows[e]['ours']:,} (ours) / "
            f"{rows[e]['official']:,} ({kit.official_name}) checkpoint rows",
            "operation",
            "saver",
            *[f"{s:,} cps" for s in sizes],
            f"{largest:,} ÷ {smallest:,}",
            "statements",
        )
        for op in OPS:
            for who, name in (("ours", "SQLSaver"), ("official", kit.official_name), ("floor", "floor (replay)")):
                cells = []
                for size in sizes:
                    s = Summary.of(samples[f"{e}/{who}/{op}/{size}"])
                    cells.append(f"{duration(s.median)} ({spread(s)})")
                growth = paired(samples[f"{e}/{who}/{op}/{largest}"], samples[f"{e}/{who}/{op}/{smallest}"])
                outcome.data["growth"][f"{e}/{who}/{op}"] = growth.as_dict()
                c = counted[e][f"{largest}/{op}"].get(who if who != "floor" else "ours", {})
                t.add_row(
                    op if who == "ours" else "",
                    name,
                    *cells,
                    ratio_with_spread(growth),
                    count(c.get("statements", float("nan"))),
                )
                if who == "ours" and op != OPS[1]:
                    outcome.targets.append(
                        Target(
                            "history",
                            f"{kit.label}, sync API, {op}: SQLSaver's time per call on a thread of "
                            f"{largest:,} checkpoints ÷ on one of {smallest:,}",
                            growth.median,
                            FLAT_LIMIT,
                            note="" if largest >= 100_000 else "the target is 10 → 100k: run with --large",
                        )
                    )
        outcome.tables.append(t)
    outcome.notes.append(
        "History rows beyond the first conversation turn are copies of its first checkpoint made in SQL, with "
        "ids older than the real ones. Growth: median [p25-p75] of per-sample ratios largest ÷ smallest size. "
        f"Build time (s): { {e: {k: round(v, 1) for k, v in b.items()} for e, b in build.items()} }"
    )
    return outcome


def _analyze(kit: Kit) -> None:
    """Fresh planner statistics after the bulk inserts (as autovacuum/auto-analyze would)."""
    if kit.engine == "postgresql":
        bulk.postgres_vacuum(kit.db, ["cpsql_checkpoints", "cpsql_blobs", "cpsql_writes"])
        bulk.postgres_vacuum(kit.official_db, ["checkpoints", "checkpoint_blobs", "checkpoint_writes"])
    elif kit.engine == "mysql":
        bulk.table_bytes(kit.db, ["cpsql_checkpoints"])  # runs ANALYZE TABLE
        bulk.table_bytes(kit.official_db, ["checkpoints"])
    else:
        for db in (kit.db, kit.official_db):
            with bulk.engine_of(db).connect() as conn:
                conn.exec_driver_sql("ANALYZE")
