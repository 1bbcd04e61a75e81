"""6. Long conversation (issue 10): one thread, `conversation_turns` (40) turns of the
agent loop with prose (`graph.conversation_graph`: 3 searches and an answer per turn,
text from a seeded generator over a 5,000-word vocabulary, about 140 kB of serialized
messages at the end), stored by ours and by the official sync saver, each on a fresh
database of its own, with `InMemorySaver` beside them as LangGraph's own floor.

What is measured, per engine:

1. **Bytes on disk** after the last turn: every table in the contender's database
   (the saver created all of them; a table the saver adds later is counted without
   changing this module), indexes and out-of-line values included, by the measure of
   `workloads/storage.py` (SQLite: dbstat pages after a WAL checkpoint; PostgreSQL:
   `pg_total_relation_size`; MariaDB: data + index length after ANALYZE TABLE, in 16 kB
   pages), minus the same measure taken right after `setup()`. Beside it, the **floor**:
   the final messages serialized once (`JsonPlusSerializer().dumps_typed(messages)`)
   plus, for every stored checkpoint, its serialized metadata and its serialized body
   without `channel_values` (id, ts, versions, versions seen, updated channels), both
   with the same serializer, as `InMemorySaver.list` returns them. Pending writes and
   the `tool_calls` counter are not in the floor: it is what a saver that stored every
   message once and nothing else would need.
2. **Time of the last turns** (turns 36-40 of 40): a thread's conversation can only be
   run once, so the contenders run it side by side, turn by turn: turn t runs for every
   contender before turn t + 1 runs for any, the starting contender rotating every turn,
   garbage collected before each run (as `runner.interleave` does). A turn's time is
   the wall time of `graph.invoke` with LangGraph's default durability (puts in a
   background thread; `invoke` returns after the last one is stored). Five turns of one
   conversation on a shared machine are noisy, so the whole conversation is run
   `conversation_repeats` (3) times, each time on fresh databases (the first run's are
   the ones measured in 1, 3 and 4): per run, the sum over the last turns, ours ÷
   official; the figure is the median of those paired ratios, with their range.
   InMemorySaver's time shows how much of a turn is LangGraph itself: its ratio to the
   official saver's is the lowest any saver could reach. PostgreSQL's databases are
   ANALYZEd between turns (untimed, as autovacuum would; `--no-analyze` turns it off).
3. **Reads on the long thread**: `get_tuple` (latest), `list(limit=10)` and `list` of
   the whole thread, ours ÷ official, interleaved repetitions (`runner.interleave`),
   the ratio being the median of per-repetition ratios, as everywhere in the suite.
4. **Bytes written per put at the last turn**: the rows of every table are read before
   and after the last turn (untimed, before the turn's first run and after its last);
   a row present afterwards and not before (inserted, or changed; a deleted row counts
   nothing) counts with the size of its values (bytes and text: their length in bytes,
   UTF-8; numbers: 8; JSON: its text; NULL: 0): what the saver wrote into its rows,
   uncompressed, without index or page overhead. Per put (divided by the checkpoints the
   turn stored) it is compared with what a put of the turn added on average: the
   serialized size of the messages the turn appended plus the floor's metadata of its
   checkpoints, divided by the same count; the ratio is therefore the turn's bytes
   written ÷ the turn's bytes added. The growth of bytes on disk
   over the same turn is shown beside it (coarse: whole 4 kB / 8 kB pages; MariaDB
   moves in 16 kB pages, and InnoDB may allocate extents of them at once).
"""

from __future__ import annotations

import gc
import json
import math
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import sqlalchemy as sa
from langchain_core.messages import AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from benchmarks import bulk
from benchmarks.contenders import ENGINE_LABELS, OFFICIAL_NAMES, official_sync, ours
from benchmarks.graph import conversation_graph, conversation_question
from benchmarks.report import Outcome, Target, count, duration, ratio, ratio_with_spread, size, table
from benchmarks.runner import Case, interleave, timed_cpu, timed_each
from benchmarks.servers import Database, Databases
from benchmarks.settings import Settings
from benchmarks.stats import Summary, overhead_ratio, paired

WORKLOAD = "long conversation"
THREAD = "long-conversation"
READS = ("get_tuple (latest)", "list (limit=10)", "list (whole thread)")
BYTES_LIMIT = 10.0
TURNS_LIMIT = 0.5
READ_LIMIT = 1.0
WRITTEN_LIMIT = 2.0
SERDE = JsonPlusSerializer()

Rows = Counter[tuple[Any, ...]]


@dataclass
class _Snapshot:
    """A database's bytes on disk and its rows (as hashable tuples, table name first)."""

    disk: int
    rows: Rows


@dataclass
class _Contender:
    who: str
    """"ours", "official" or "memory"."""
    name: str
    saver: BaseCheckpointSaver[Any]
    graph: Any
    db: Database | None
    close: Callable[[], None]
    empty: int = 0
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def _config() -> RunnableConfig:
    return {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}


def _tables(db: Database) -> list[str]:
    """Every table of the contender's own database: the saver made them all."""
    return sorted(sa.inspect(bulk.engine_of(db)).get_table_names())


def _disk(db: Database) -> int:
    if db.engine == "sqlite":
        bulk.sqlite_checkpoint_wal(db)
    return sum(bulk.table_bytes(db, _tables(db)).values())


def _analyze(db: Database) -> None:
    """ANALYZE the saver's tables (a bare ANALYZE would also go through the catalogs: 60 ms
    a call, which between 40 turns x 2 savers x 3 repeats adds up)."""
    names = ", ".join(f'"{name}"' for name in _tables(db))
    if names:
        with bulk.engine_of(db).connect() as conn:
            conn.exec_driver_sql(f"ANALYZE {names}")
            conn.commit()


def _hashable(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _value_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (bool, int, float)):
        return 8
    return len(str(value).encode("utf-8"))


def _rows(db: Database) -> Rows:
    rows: Rows = Counter()
    quote = "`" if db.engine == "mysql" else '"'
    with bulk.engine_of(db).connect() as conn:
        for name in _tables(db):
            for row in conn.execute(sa.text(f"SELECT * FROM {quote}{name}{quote}")):
                key = (name, *(_hashable(v) for v in row))
                rows[key] += 1
    return rows


def _snapshot(db: Database) -> _Snapshot:
    return _Snapshot(_disk(db), _rows(db))


def _written(before: _Snapshot, after: _Snapshot) -> int:
    """Bytes of the values of the rows present after and not before (new or changed)."""
    return sum(sum(_value_bytes(v) for v in row[1:]) * n for row, n in (after.rows - before.rows).items())


def _checkpoint_bytes(saver: BaseCheckpointSaver[Any]) -> dict[str, int]:
    """Per stored checkpoint id: its metadata and its body without channel values, serialized."""
    sizes: dict[str, int] = {}
    for tup in saver.list(_config()):
        body = {k: v for k, v in tup.checkpoint.items() if k != "channel_values"}
        sizes[tup.checkpoint["id"]] = len(SERDE.dumps_typed(body)[1]) + len(SERDE.dumps_typed(tup.metadata)[1])
    return sizes


def _messages(saver: BaseCheckpointSaver[Any]) -> list[AnyMessage]:
    latest = saver.get_tuple(_config())
    assert latest is not None
    return list(latest.checkpoint["channel_values"].get("messages", []))


def _open(engine: str, databases: Databases, settings: Settings, repeat: int) -> list[_Contender]:
    contenders: list[_Contender] = []
    try:
        db = databases.create(engine, f"conv{repeat}_ours")
        saver = ours(db)
        contenders.append(_Contender("ours", "SQLSaver", saver, None, db, saver.close))
        db = databases.create(engine, f"conv{repeat}_official")
        official, close = official_sync(db)
        contenders.append(_Contender("official", OFFICIAL_NAMES[engine][0], official, None, db, close))
        contenders.append(_Contender("memory", "InMemorySaver", InMemorySaver(), None, None, lambda: None))
    except BaseException:
        _close(contenders)
        raise
    for c in contenders:
        c.graph = conversation_graph(settings.conversation_shape).compile(checkpointer=c.saver)
        c.empty = _disk(c.db) if c.db is not None else 0
    return contenders


def _close(contenders: list[_Contender]) -> None:
    for c in contenders:
        try:
            c.close()
        except Exception as exc:  # closing must not hide the run's own error
            print(f"warning: closing {c.name} failed: {exc}")


def _converse(contenders: list[_Contender], settings: Settings, *, repeat: int, analyze: bool) -> dict[str, Any]:
    """Run the conversation on every contender, turn by turn, rotating who goes first;
    on the first repeat, snapshot the databases around the last turn and return what
    the conversation stored and what its last turn wrote (later repeats only time)."""
    measure = repeat == 0
    turns = settings.conversation_turns
    stored = [c for c in contenders if c.db is not None]
    memory = next(c for c in contenders if c.who == "memory")
    before: dict[str, _Snapshot] = {}
    after: dict[str, _Snapshot] = {}
    messages_before: list[AnyMessage] = []
    ids_before: set[str] = set()
    config = _config()
    try:
        for turn in range(turns):
            if measure and turn == turns - 1:
                before = {c.who: _snapshot(c.db) for c in stored if c.db is not None}
                messages_before = _messages(memory.saver) if turn else []
                ids_before = set(_checkpoint_bytes(memory.saver))
            question = conversation_question(turn, settings.conversation_shape)
            start = (turn + repeat) % len(contenders)
            gc.collect()
            gc.freeze()
            for c in [*contenders[start:], *contenders[:start]]:
                gc.collect()
                sample = timed_cpu(
                    partial(c.graph.invoke, {"messages": [question], "tool_calls": 0}, config)  # same input for all
                )
                c.walls.append(sample.wall)
                c.cpus.append(sample.cpu)
            if analyze:
                for c in stored:
                    if c.db is not None and c.db.engine == "postgresql":
                        _analyze(c.db)
        if measure:
            after = {c.who: _snapshot(c.db) for c in stored if c.db is not None}
    finally:
        gc.unfreeze()
    if not measure:
        return {}
    final = _messages(memory.saver)
    assert [m.id for m in final[: len(messages_before)]] == [m.id for m in messages_before]
    for c in stored:  # every saver must give back the whole conversation, or its bytes mean nothing
        got = _messages(c.saver)
        assert [(m.id, m.content) for m in got] == [(m.id, m.content) for m in final], f"{c.name} lost messages"
    metadata = _checkpoint_bytes(memory.saver)
    new_ids = set(metadata) - ids_before
    added_messages = len(SERDE.dumps_typed(final[len(messages_before) :])[1])
    added_metadata = sum(metadata[i] for i in new_ids)
    serialized = SERDE.dumps_typed(final)[1]
    return {
        "final_messages": len(final),
        "final_messages_bytes": len(serialized),
        "final_messages_zlib_ratio": len(serialized) / len(zlib.compress(serialized)),
        "final_text_chars": sum(len(str(m.content)) for m in final),
        "checkpoints": len(metadata),
        "metadata_bytes": sum(metadata.values()),
        "last_turn": {
            "puts": len(new_ids),
            "messages_added": len(final) - len(messages_before),
            "added_messages_bytes": added_messages,
            "added_metadata_bytes": added_metadata,
            "added_bytes": added_messages + added_metadata,
            "written_rows_bytes": {who: _written(before[who], after[who]) for who in before},
            "disk_growth": {who: after[who].disk - before[who].disk for who in before},
        },
        "bytes_on_disk": {c.who: after[c.who].disk - c.empty for c in stored},
        "empty_bytes": {c.who: c.empty for c in stored},
    }


def _read(saver: BaseCheckpointSaver[Any], op: str) -> None:
    if op == READS[0]:
        assert saver.get_tuple(_config()) is not None
    elif op == READS[1]:
        list(saver.list(_config(), limit=10))
    else:
        list(saver.list(_config()))


def run(engines: list[str], databases: Databases, settings: Settings, *, analyze: bool, quiet: bool = False) -> Outcome:
    outcome = Outcome("conversation")
    turns, timed = settings.conversation_turns, min(settings.conversation_timed_turns, settings.conversation_turns)
    first_timed = turns - timed + 1
    early = min(timed, turns)  # the first turns, for comparison: a short thread
    repeats = max(1, settings.conversation_repeats)
    opened: dict[str, list[_Contender]] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for engine in engines:
            started = time.perf_counter()
            per_turn: list[dict[str, dict[str, list[float]]]] = []  # per repeat, per contender, every turn
            for repeat in range(repeats):
                contenders = _open(engine, databases, settings, repeat)
                if repeat == 0:  # kept open: what it stored is measured and read below
                    opened[engine] = contenders
                    results[engine] = _converse(contenders, settings, repeat=repeat, analyze=analyze)
                else:
                    try:
                        _converse(contenders, settings, repeat=repeat, analyze=analyze)
                    finally:
                        _close(contenders)
                per_turn.append({c.who: {"walls": c.walls, "cpus": c.cpus} for c in contenders})
            results[engine]["seconds"] = time.perf_counter() - started
            results[engine]["per_turn"] = per_turn
            contenders = opened[engine]
            if analyze and engine == "postgresql":
                for c in contenders:
                    if c.db is not None:
                        _analyze(c.db)
            counts = {c.who: sum(1 for _ in c.saver.list(_config())) for c in contenders}
            results[engine]["stored_checkpoints"] = counts
            assert len(set(counts.values())) == 1, f"the savers stored different conversations: {counts}"

        samples: dict[str, list[float]] = {}
        for ops, calls, reps in (
            (READS[:2], settings.conversation_calls, settings.conversation_reps),
            (READS[2:], settings.conversation_list_calls, settings.conversation_list_reps),
        ):
            cases: list[Case[float]] = []
            for engine, contenders in opened.items():
                for op in ops:
                    for c in contenders:
                        if c.who == "memory":
                            continue

                        def sample(s: BaseCheckpointSaver[Any] = c.saver, o: str = op, n: int = calls) -> float:
                            return timed_each(lambda _: _read(s, o), n)

                        cases.append(Case(f"{engine}/{c.who}/{op}", sample))
            samples |= interleave(
                cases, reps=reps, warmup=settings.warmup, label=f"long conversation: {ops[0]}", quiet=quiet
            )
    finally:
        for contenders in opened.values():
            _close(contenders)

    disk_t = table(
        f"Long conversation: bytes on disk after {turns} turns on one thread (tables + indexes + out-of-line "
        "values, minus empty tables), against the floor",
        "engine",
        "checkpoints",
        "SQLSaver",
        "official",
        "official bytes",
        "official ÷ ours",
        "floor",
        "ours ÷ floor",
        "official ÷ floor",
    )
    time_t = table(
        f"Long conversation: wall time of turns {first_timed}-{turns} of {turns}, median of {repeats} "
        "conversations on fresh databases (in each, all contenders run a turn before any runs the next)",
        "engine",
        "SQLSaver",
        "official",
        "InMemorySaver",
        "ours ÷ official [min-max]",
        "InMemorySaver ÷ official",
        "ours ÷ official overhead",
        "ours ÷ official CPU",
        f"SQLSaver, turns 1-{early}",
        f"official, turns 1-{early}",
    )
    read_t = table(
        f"Long conversation: reads on the {turns}-turn thread, median per call ({settings.conversation_reps} "
        f"interleaved samples of {settings.conversation_calls} calls; the whole thread: "
        f"{settings.conversation_list_reps} of {settings.conversation_list_calls})",
        "engine",
        "operation",
        "SQLSaver",
        "official",
        "ours ÷ official [p25-p75]",
    )
    write_t = table(
        f"Long conversation: bytes written by turn {turns} (rows new or changed, their values' bytes; on-disk growth "
        "beside)",
        "engine",
        "saver",
        "puts",
        "rows written",
        "per put",
        "turn added",
        "added per put",
        "written ÷ added",
        "disk growth",
        "disk growth per put",
    )
    summary: dict[str, Any] = {}
    for engine, r in results.items():
        label, official_name = ENGINE_LABELS[engine], OFFICIAL_NAMES[engine][0]
        floor = r["final_messages_bytes"] + r["metadata_bytes"]
        disk = r["bytes_on_disk"]
        bytes_ratio = disk["official"] / disk["ours"] if disk["ours"] > 0 else math.nan
        r["floor_bytes"] = floor
        disk_t.add_row(
            label,
            count(r["checkpoints"]),
            size(disk["ours"]),
            official_name,
            size(disk["official"]),
            ratio(bytes_ratio, 1),
            size(floor),
            ratio(disk["ours"] / floor, 1),
            ratio(disk["official"] / floor, 1),
        )

        # per repeat: the sum over the timed (last) turns, and over as many first turns
        who_all = ("ours", "official", "memory")
        last = {w: [sum(rp[w]["walls"][-timed:]) for rp in r["per_turn"]] for w in who_all}
        last_cpu = {w: [sum(rp[w]["cpus"][-timed:]) for rp in r["per_turn"]] for w in who_all}
        first = {w: [sum(rp[w]["walls"][:early]) for rp in r["per_turn"]] for w in who_all}
        turns_pair = paired(last["ours"], last["official"])
        turn_ratio = turns_pair.median
        memory_ratio = paired(last["memory"], last["official"]).median
        overhead, _ = overhead_ratio(last["ours"], last["official"], last["memory"])
        cpu_ratio, _ = overhead_ratio(last_cpu["ours"], last_cpu["official"], last_cpu["memory"])
        median = {w: Summary.of(v).median for w, v in last.items()}
        time_t.add_row(
            label,
            duration(median["ours"]),
            duration(median["official"]),
            duration(median["memory"]),
            f"{ratio(turn_ratio)} [{turns_pair.min:.2f}-{turns_pair.max:.2f}]",
            ratio(memory_ratio),
            ratio(overhead),
            ratio(cpu_ratio),
            duration(Summary.of(first["ours"]).median),
            duration(Summary.of(first["official"]).median),
        )

        reads: dict[str, Any] = {}
        for op in READS:
            o, f = samples[f"{engine}/ours/{op}"], samples[f"{engine}/official/{op}"]
            pair = paired(o, f)
            reads[op] = {"ours": Summary.of(o).as_dict(), "official": Summary.of(f).as_dict(), "ratio": pair.as_dict()}
            read_t.add_row(
                label if op == READS[0] else "",
                op,
                duration(Summary.of(o).median),
                f"{official_name} {duration(Summary.of(f).median)}",
                ratio_with_spread(pair),
            )

        lt = r["last_turn"]
        puts, added = lt["puts"], lt["added_bytes"]
        per_put: dict[str, float] = {}
        for who, name in (("ours", "SQLSaver"), ("official", official_name)):
            written = lt["written_rows_bytes"][who]
            per_put[who] = written / added if added else math.nan
            growth = lt["disk_growth"][who]
            write_t.add_row(
                label if who == "ours" else "",
                name,
                count(puts),
                size(written),
                size(written / puts if puts else math.nan),
                size(added),
                size(added / puts if puts else math.nan),
                ratio(per_put[who]),
                size(growth),
                size(growth / puts if puts else math.nan),
            )

        summary[engine] = {
            "bytes_on_disk_official_over_ours": bytes_ratio,
            "last_turns_ours_over_official": turn_ratio,
            "last_turns_seconds": last,
            "last_turns_ratios": turns_pair.as_dict(),
            "last_turns_memory_over_official": memory_ratio,
            "last_turns_overhead_ratio": overhead,
            "last_turns_cpu_overhead_ratio": cpu_ratio,
            "reads": reads,
            "written_per_put_over_added": per_put,
        }
        outcome.targets += [
            Target(
                WORKLOAD,
                f"{label}, bytes on disk after {turns} turns: {official_name} ÷ SQLSaver",
                bytes_ratio,
                BYTES_LIMIT,
                higher_is_better=True,
                note=f"floor {size(floor)}; SQLSaver {ratio(disk['ours'] / floor, 1)} it",
            ),
            Target(
                WORKLOAD,
                f"{label}, sync API, turns {first_timed}-{turns}: SQLSaver ÷ {official_name} (wall time)",
                turn_ratio,
                TURNS_LIMIT,
            ),
            *[
                Target(
                    WORKLOAD,
                    f"{label}, sync API, {op} on the {turns}-turn thread: SQLSaver ÷ {official_name} (time per call)",
                    reads[op]["ratio"]["median"],
                    READ_LIMIT,
                )
                for op in READS
            ],
            Target(
                WORKLOAD,
                f"{label}, bytes SQLSaver wrote per put at turn {turns} ÷ bytes a put of the turn added",
                per_put["ours"],
                WRITTEN_LIMIT,
            ),
        ]

    outcome.tables += [disk_t, time_t, read_t, write_t]
    any_result = next(iter(results.values()), None)
    if any_result is not None:
        outcome.notes.append(
            f"One thread of {turns} turns ({any_result['checkpoints']} checkpoints, {any_result['final_messages']} "
            f"messages, {any_result['final_text_chars']:,} characters of text): the final messages serialize to "
            f"{any_result['final_messages_bytes']:,} bytes with JsonPlusSerializer (zlib compresses them "
            f"{any_result['final_messages_zlib_ratio']:.1f}x). Floor = those bytes + every checkpoint's serialized "
            f"metadata and body without channel values ({any_result['metadata_bytes']:,} bytes in all). Bytes "
            f"written: rows new or changed during turn {turns}, the bytes of their values (uncompressed, no index "
            "or page overhead); the turn added its new messages serialized + its checkpoints' metadata and body; "
            "'written ÷ added': bytes written per put ÷ bytes added per put (the turn's written ÷ added). "
            "Disk growth: "
            "whole pages, MariaDB's 16 kB. Turn times: per conversation, the sum over the turns; ratio: median "
            "[min-max] of the per-conversation ratios; overhead = time - InMemorySaver's over the same turns, "
            "ratio of the median overheads (wall time, and process CPU time); "
            "'InMemorySaver ÷ official' is the lowest 'ours ÷ official' any saver could reach (LangGraph's own "
            "work in the turn)."
        )
    outcome.data = {
        "turns": turns,
        "timed_turns": timed,
        "repeats": repeats,
        "shape": vars(settings.conversation_shape),
        "results": results,
        "summary": summary,
        "samples": samples,
    }
    return outcome
