"""2. Per operation: each saver method on its own, with the statements and round trips it
sends, against the raw-driver floor.

Contenders per engine: ours (sync and async API), the official sync and async savers,
and two floors on a bare driver connection:

* **replay**: exactly the statements our saver sent for that operation (captured at the
  DBAPI cursor, with fresh keys swapped in for writes), run on the bare driver, so the
  floor has the same number of statements, round trips and commits. Our time divided
  by it is the cost of everything above the driver: validation, serialization,
  SQLAlchemy's connection checkout, decoding.
* **raw**: one upsert in its own transaction, and one indexed select, of a 2 kB value:
  the cheapest write and read the engine does.

Every sample is `op_calls` calls; fixtures (threads to read, delete or copy) are made
before the timer starts. The data is LangGraph's own: a recorded conversation.

Targets (issue 9), for each of `TARGET_OPS` on every engine: ours ÷ the official saver
≤ 1.0 on the sync and on the async API, and ours ÷ (replay floor + serde) ≤ 1.2 on the
sync API (the floor is sync); and one commit per put. delete_thread and copy_thread
are measured and shown without a target.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from benchmarks import bulk, tracing
from benchmarks.contenders import Kit
from benchmarks.fixtures import PutArgs, WritesArgs, aload, checkpoint_ids, fresh_put, load, new_id, thread_config
from benchmarks.graph import Recorded
from benchmarks.report import Outcome, Target, count, duration, ratio_with_spread, spread, table
from benchmarks.runner import Case, Loop, atimed, interleave, timed_each
from benchmarks.servers import Database
from benchmarks.settings import Settings
from benchmarks.stats import Summary, paired
from checkpoint_sql.core.ids import key_of

OPS = (
    "put",
    "put_writes",
    "get_tuple (latest)",
    "get_tuple (by id)",
    "list (limit=10)",
    "list (whole thread)",
    "delete_thread",
    "copy_thread",
)
RAW_OPS = ("raw: 1 upsert/tx", "raw: 1 indexed select")
READS = ("get_tuple (latest)", "get_tuple (by id)", "list (limit=10)", "list (whole thread)")
SERDE_OPS = ("put", "put_writes", *READS)
TARGET_OPS = SERDE_OPS
"""The operations with targets: ours ÷ official, sync and async; ours ÷ (floor + serde)."""
OFFICIAL_LIMIT = 1.0
SERDE_LIMIT = 1.2
WARM_CALLS = 6
"""Calls before a counted one, so it counts the steady state: past psycopg's prepare
threshold (5), and on a pool connection that was just used (no idle ping)."""
PAYLOAD = b"x" * 2048


@dataclass
class Fixture:
    """What the operations of one contender work on."""

    conversation: str
    """Thread holding the recorded conversation (read, listed, copied)."""
    writes_thread: str
    """Thread whose one checkpoint receives `put_writes` (nobody reads it)."""
    writes_checkpoint: str
    middle_id: str


class Ops:
    """The operations of one saver through one API, as sample callables."""

    def __init__(
        self,
        name: str,
        saver: BaseCheckpointSaver[Any],
        fixture: Fixture,
        put_template: PutArgs,
        writes_template: WritesArgs,
        settings: Settings,
        make_thread: Callable[[str], None],
    ) -> None:
        self.name, self.saver, self.fixture = name, saver, fixture
        self.put_template, self.writes_template = put_template, writes_template
        self.calls = settings.op_calls
        self.make_thread = make_thread
        self.serial = itertools.count()

    def _ids(self, what: str) -> list[str]:
        return [f"{what}-{self.name}-{next(self.serial)}" for _ in range(self.calls)]

    # --- sync

    def sample(self, op: str) -> float:
        s, f, n = self.saver, self.fixture, self.calls
        if op == "put":
            puts = [fresh_put(self.put_template, t) for t in self._ids("put")]
            return timed_each(lambda i: s.put(*puts[i]), n)
        if op == "put_writes":
            _, writes, _, path = self.writes_template
            config = thread_config(f.writes_thread, f.writes_checkpoint)
            tasks = [str(uuid.uuid4()) for _ in range(n)]
            return timed_each(lambda i: s.put_writes(config, writes, tasks[i], path), n)
        if op == "get_tuple (latest)":
            config = thread_config(f.conversation)
            return timed_each(lambda _: s.get_tuple(config), n)
        if op == "get_tuple (by id)":
            config = thread_config(f.conversation, f.middle_id)
            return timed_each(lambda _: s.get_tuple(config), n)
        if op == "list (limit=10)":
            config = thread_config(f.conversation)
            return timed_each(lambda _: list(s.list(config, limit=10)), n)
        if op == "list (whole thread)":
            config = thread_config(f.conversation, ns=None)
            return timed_each(lambda _: list(s.list(config)), n)
        if op == "delete_thread":
            threads = self._ids("del")
            for t in threads:
                self.make_thread(t)
            return timed_each(lambda i: s.delete_thread(threads[i]), n)
        if op == "copy_thread":
            targets = self._ids("copy")
            return timed_each(lambda i: s.copy_thread(f.conversation, targets[i]), n)
        raise ValueError(op)

    # --- async

    def asample(self, op: str, loop: Loop) -> float:
        s, f, n = self.saver, self.fixture, self.calls

        def run(call: Callable[[], Awaitable[Any]]) -> float:
            async def many() -> None:
                for _ in range(n):
                    await call()

            return atimed(loop, many, n)

        if op == "put":
            puts = iter([fresh_put(self.put_template, t) for t in self._ids("put")])
            return run(lambda: s.aput(*next(puts)))
        if op == "put_writes":
            _, writes, _, path = self.writes_template
            config = thread_config(f.writes_thread, f.writes_checkpoint)
            return run(lambda: s.aput_writes(config, writes, str(uuid.uuid4()), path))
        if op == "get_tuple (latest)":
            config = thread_config(f.conversation)
            return run(lambda: s.aget_tuple(config))
        if op == "get_tuple (by id)":
            config = thread_config(f.conversation, f.middle_id)
            return run(lambda: s.aget_tuple(config))
        if op == "list (limit=10)":
            config = thread_config(f.conversation)
            return run(lambda: _drain(s.alist(config, limit=10)))
        if op == "list (whole thread)":
            config = thread_config(f.conversation, ns=None)
            return run(lambda: _drain(s.alist(config)))
        if op == "delete_thread":
            threads = self._ids("del")
            for t in threads:
                self.make_thread(t)
            it = iter(threads)
            return run(lambda: s.adelete_thread(next(it)))
        if op == "copy_thread":
            targets = iter(self._ids("copy"))
            return run(lambda: s.acopy_thread(f.conversation, next(targets)))
        raise ValueError(op)


async def _drain(iterator: Any) -> None:
    async for _ in iterator:
        pass


# --- the floors -----------------------------------------------------------------------------------


@dataclass
class Captured:
    """Our statements for one op, and the values to swap on replay."""

    statements: list[tracing.Captured]
    template: dict[str, str]
    """What the captured call used: "thread" (a thread id written to), "checkpoint", "task"."""


class Floor:
    """Our captured statements replayed on a bare driver connection, with fresh keys.

    With `serde`, the floor also does the serializer work no saver can skip: dumping the
    values a write stores (every channel in ``new_versions``, the checkpoint body, the
    metadata as JSON; each write's value) and loading every value a read returns.
    """

    def __init__(
        self,
        kit: Kit,
        captured: dict[str, Captured],
        settings: Settings,
        conversation: str,
        put_template: PutArgs,
        writes_template: WritesArgs,
        *,
        serde: bool = False,
    ) -> None:
        self.kit, self.captured, self.calls = kit, captured, settings.op_calls
        self.conversation = conversation
        self.put_template, self.writes_template = put_template, writes_template
        self.serde = kit.ours.serde if serde else None
        self.serial = itertools.count()

    def substitution(self, op: str) -> tracing.Substitution:
        """Fresh values for the keys the captured call wrote under."""
        template = self.captured[op].template
        strings: dict[str, str] = {}
        blobs: dict[bytes, bytes] = {}
        i = next(self.serial)
        if "thread" in template:
            fresh = f"floor-{i}-{template['thread']}"
            strings[template["thread"]] = fresh
            blobs[key_of(template["thread"])] = key_of(fresh)
        if "checkpoint" in template:
            strings[template["checkpoint"]] = new_id()
        if "task" in template:
            strings[template["task"]] = str(uuid.uuid4())
        return tracing.Substitution(strings, blobs)

    def prepare(self, op: str, sub: tracing.Substitution) -> None:
        """Untimed: the thread a replayed delete_thread deletes (made by our copy_thread)."""
        if op == "delete_thread":
            (fresh,) = sub.strings.values()
            self.kit.ours.copy_thread(self.conversation, fresh)

    def once(self, op: str, sub: tracing.Substitution) -> None:
        serde = self.serde
        if serde is not None and op == "put":
            _, checkpoint, metadata, versions = self.put_template
            values = checkpoint["channel_values"]
            for channel in versions:
                if channel in values:
                    serde.dumps_typed(values[channel])
            serde.dumps_typed({k: v for k, v in checkpoint.items() if k != "channel_values"})
            json.dumps(metadata)
        elif serde is not None and op == "put_writes":
            for _, value in self.writes_template[1]:
                serde.dumps_typed(value)
        rows = tracing.replay(self.kit.raw, self.captured[op].statements, sub)
        if serde is not None and op in READS:
            _decode(serde, rows)

    def sample(self, op: str) -> float:
        subs = [self.substitution(op) for _ in range(self.calls)]
        for sub in subs:
            self.prepare(op, sub)
        return timed_each(lambda i: self.once(op, subs[i]), self.calls)


def _decode(serde: Any, rows: list[Any]) -> None:
    """Load every serialized value in `rows`: a (type tag, bytes) column pair, as every
    saver stores them, and JSON text (metadata, channel versions)."""
    for row in rows:
        for i, value in enumerate(row):
            if isinstance(value, (bytes, memoryview)) and i and isinstance(row[i - 1], str):
                with contextlib.suppress(Exception):
                    serde.loads_typed((row[i - 1], bytes(value)))
            elif isinstance(value, str) and value[:1] in ("{", "["):
                with contextlib.suppress(ValueError):
                    json.loads(value)


def _check_replay(kit: Kit, op: str, sub: tracing.Substitution, writes_fx: Fixture) -> None:
    """Make sure a replayed write did the same work on fresh keys (and not, say, a no-op
    on the captured ones): the floor must not be cheaper than what it stands for."""
    fresh = next(iter(sub.strings.values()), "")
    if op == "put":
        fresh_thread = next(v for k, v in sub.strings.items() if k.startswith("cap-put-"))
        ok = kit.ours.get_tuple(thread_config(fresh_thread)) is not None
    elif op == "copy_thread":
        ok = kit.ours.get_tuple(thread_config(fresh)) is not None
    elif op == "delete_thread":
        ok = kit.ours.get_tuple(thread_config(fresh)) is None
    elif op == "put_writes":
        found = kit.ours.get_tuple(thread_config(writes_fx.writes_thread, writes_fx.writes_checkpoint))
        ok = found is not None and any(w[0] == fresh for w in found.pending_writes or ())
    else:
        return
    if not ok:
        raise AssertionError(f"{kit.engine}: the replayed floor of {op} did not do the operation's work")


class RawMinimal:
    """One upsert per transaction, one indexed select: the engine's cheapest write and read."""

    def __init__(self, kit: Kit, settings: Settings) -> None:
        self.kit, self.calls = kit, settings.op_calls
        self.serial = itertools.count()
        engine = kit.engine
        mark = "?" if engine == "sqlite" else "%s"
        if engine == "sqlite":
            create = "CREATE TABLE IF NOT EXISTS bench_floor (k VARCHAR(64) PRIMARY KEY, v BLOB)"
            self.upsert = (
                f"INSERT INTO bench_floor (k, v) VALUES ({mark}, {mark}) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            )
        elif engine == "postgresql":
            create = "CREATE TABLE IF NOT EXISTS bench_floor (k VARCHAR(64) PRIMARY KEY, v BYTEA)"
            self.upsert = (
                f"INSERT INTO bench_floor (k, v) VALUES ({mark}, {mark}) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            )
        else:
            create = "CREATE TABLE IF NOT EXISTS bench_floor (k VARCHAR(64) PRIMARY KEY, v LONGBLOB)"
            self.upsert = (
                f"INSERT INTO bench_floor (k, v) VALUES ({mark}, {mark}) ON DUPLICATE KEY UPDATE v = VALUES(v)"
            )
        self.select = f"SELECT v FROM bench_floor WHERE k = {mark}"
        cursor = kit.raw.cursor()
        cursor.execute(create)
        cursor.execute(self.upsert, ("present", PAYLOAD))
        cursor.close()

    def run(self, conn: Any, op: str, key: str) -> None:
        cursor = conn.cursor()
        if op == RAW_OPS[0]:
            cursor.execute(self.upsert, (key, PAYLOAD))
        else:
            cursor.execute(self.select, ("present",))
            cursor.fetchall()
        cursor.close()

    def sample(self, op: str) -> float:
        keys = [f"k-{next(self.serial)}" for _ in range(self.calls)]
        raw = self.kit.raw
        return timed_each(lambda i: self.run(raw, op, keys[i]), self.calls)


# --- fixtures and counting --------------------------------------------------------------------------


def _fixture(saver: BaseCheckpointSaver[Any], recorded: Recorded, put_template: PutArgs, name: str) -> Fixture:
    conversation = f"conv-{name}"
    load(saver, recorded, conversation)
    writes_thread = f"pw-{name}"
    stored = saver.put(*fresh_put(put_template, writes_thread))
    ids = checkpoint_ids(recorded)
    return Fixture(conversation, writes_thread, stored["configurable"]["checkpoint_id"], ids[len(ids) // 2])


async def _afixture(saver: BaseCheckpointSaver[Any], recorded: Recorded, put_template: PutArgs, name: str) -> Fixture:
    conversation = f"conv-{name}"
    await aload(saver, recorded, conversation)
    writes_thread = f"pw-{name}"
    stored = await saver.aput(*fresh_put(put_template, writes_thread))
    ids = checkpoint_ids(recorded)
    return Fixture(conversation, writes_thread, stored["configurable"]["checkpoint_id"], ids[len(ids) // 2])


def _prepare(op: str, fixture: Fixture, tag: str, make_thread: Callable[[str], None]) -> dict[str, str]:
    """Untimed preparation of one call of `op`: the keys it will write under (kept for
    replay), and the thread it will delete."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}"
    if op == "put":
        return {"thread": f"cap-put-{suffix}", "checkpoint": new_id()}
    if op == "put_writes":
        return {"task": str(uuid.uuid4())}
    if op == "delete_thread":
        thread = f"cap-del-{suffix}"
        make_thread(thread)
        return {"thread": thread}
    if op == "copy_thread":
        return {"thread": f"cap-copy-{suffix}"}
    return {}


def _call(
    saver: BaseCheckpointSaver[Any],
    op: str,
    fixture: Fixture,
    keys: dict[str, str],
    put_template: PutArgs,
    writes_template: WritesArgs,
) -> None:
    """One call of `op` on `saver`, as the samples make it."""
    if op == "put":
        saver.put(*fresh_put(put_template, keys["thread"], keys["checkpoint"]))
    elif op == "put_writes":
        _, writes, _, path = writes_template
        saver.put_writes(thread_config(fixture.writes_thread, fixture.writes_checkpoint), writes, keys["task"], path)
    elif op == "get_tuple (latest)":
        saver.get_tuple(thread_config(fixture.conversation))
    elif op == "get_tuple (by id)":
        saver.get_tuple(thread_config(fixture.conversation, fixture.middle_id))
    elif op == "list (limit=10)":
        list(saver.list(thread_config(fixture.conversation), limit=10))
    elif op == "list (whole thread)":
        list(saver.list(thread_config(fixture.conversation, ns=None)))
    elif op == "delete_thread":
        saver.delete_thread(keys["thread"])
    elif op == "copy_thread":
        saver.copy_thread(fixture.conversation, keys["thread"])
    else:
        raise ValueError(op)


def _supports(saver: BaseCheckpointSaver[Any], op: str) -> bool:
    if op == "copy_thread":
        return type(saver).copy_thread is not BaseCheckpointSaver.copy_thread
    return True


def run(kits: list[Kit], recorded: Recorded, settings: Settings, loop: Loop, *, quiet: bool = False) -> Outcome:
    put_template = recorded.puts[len(recorded.puts) // 2]
    writes_template = recorded.writes[len(recorded.writes) // 2]
    outcome = Outcome("operations")
    cases: list[Case[float]] = []
    counted: dict[str, dict[str, dict[str, Any]]] = {}
    supported: dict[str, set[str]] = {}
    for kit in kits:
        engine = _Engine(kit, recorded, put_template, writes_template, settings, loop)
        counted[kit.engine] = engine.count()
        supported[kit.engine] = engine.supported
        cases += engine.cases()
    samples = interleave(cases, reps=settings.op_reps, warmup=settings.warmup, label="operations", quiet=quiet)
    _report(outcome, kits, samples, counted, supported, settings)
    return outcome


class _Engine:
    """The contenders of one engine: fixtures, counting, and the sample cases."""

    def __init__(
        self,
        kit: Kit,
        recorded: Recorded,
        put_template: PutArgs,
        writes_template: WritesArgs,
        settings: Settings,
        loop: Loop,
    ) -> None:
        assert kit.official_async is not None and kit.official_async_db is not None
        self.kit, self.loop, self.settings = kit, loop, settings
        self.put_template, self.writes_template = put_template, writes_template
        official_db, official_async_db = kit.official_db, kit.official_async_db
        self.ours_fx = _fixture(kit.ours, recorded, put_template, "ours")
        self.official_fx = _fixture(kit.official, recorded, put_template, "official")
        ours_afx = loop.run(_afixture(kit.ours, recorded, put_template, "ours-async"))
        official_afx = loop.run(_afixture(kit.official_async, recorded, put_template, "official-async"))

        def ours_thread(source: str) -> Callable[[str], None]:
            return lambda target: kit.ours.copy_thread(source, target)

        def official_thread(db: Database, source: str) -> Callable[[str], None]:
            return lambda target: bulk.copy_official_thread(db, source, target)

        args = (put_template, writes_template, settings)
        self.ours = Ops("ours", kit.ours, self.ours_fx, *args, ours_thread("conv-ours"))
        self.official = Ops(
            "official", kit.official, self.official_fx, *args, official_thread(official_db, "conv-official")
        )
        self.ours_async = Ops("ours-async", kit.ours, ours_afx, *args, ours_thread("conv-ours-async"))
        self.official_async = Ops(
            "official-async",
            kit.official_async,
            official_afx,
            *args,
            official_thread(official_async_db, "conv-official-async"),
        )
        self.twins: list[tuple[str, BaseCheckpointSaver[Any], Fixture, Callable[[str], None]]] = [
            ("ours", kit.ours_counting, self.ours_fx, ours_thread("conv-ours")),
            ("official", kit.official_counting, self.official_fx, official_thread(official_db, "conv-official")),
        ]
        self.supported = {op for op in OPS if _supports(kit.official, op)}
        self.floor: Floor | None = None
        self.floor_serde: Floor | None = None
        self.raw_min = RawMinimal(kit, settings)

    def count(self) -> dict[str, dict[str, Any]]:
        """Statements of one call of each op on the counting twins; captures ours' for the floor."""
        kit, counted = self.kit, {}
        captured: dict[str, Captured] = {}
        for op in OPS:
            for who, saver, fx, make_thread in self.twins:
                if not _supports(saver, op):
                    continue
                for _ in range(WARM_CALLS):
                    warm = _prepare(op, fx, f"{who}-warm", make_thread)
                    _call(saver, op, fx, warm, self.put_template, self.writes_template)
                keys = _prepare(op, fx, who, make_thread)
                with tracing.window(capture=who == "ours") as c:
                    _call(saver, op, fx, keys, self.put_template, self.writes_template)
                counted[f"{who}/{op}"] = c.as_dict()
                if who == "ours":
                    captured[op] = Captured(c.captured, keys)
        args = (kit, captured, self.settings, self.ours_fx.conversation, self.put_template, self.writes_template)
        floor = self.floor = Floor(*args)
        self.floor_serde = Floor(*args, serde=True)
        for op in OPS:  # the replayed floor, counted on the counting raw connection
            sub = floor.substitution(op)
            floor.prepare(op, sub)
            with tracing.window() as c:
                tracing.replay(kit.raw_counting, captured[op].statements, sub)
            counted[f"floor/{op}"] = c.as_dict()
            _check_replay(kit, op, sub, self.ours_fx)
        for op in RAW_OPS:
            with tracing.window() as c:
                self.raw_min.run(kit.raw_counting, op, f"count-{op}")
            counted[f"raw/{op}"] = c.as_dict()
        return counted

    def cases(self) -> list[Case[float]]:
        e, loop, floor, floor_serde = self.kit.engine, self.loop, self.floor, self.floor_serde
        assert floor is not None and floor_serde is not None, "count() first: the floor replays what it captured"
        found: list[Case[float]] = []
        for op in OPS:
            found += [
                Case(f"{e}/ours/{op}", partial(self.ours.sample, op)),
                Case(f"{e}/floor/{op}", partial(floor.sample, op)),
                *([Case(f"{e}/floor+serde/{op}", partial(floor_serde.sample, op))] if op in SERDE_OPS else []),
                Case(f"{e}/ours-async/{op}", partial(self.ours_async.asample, op, loop)),
            ]
            if op in self.supported:
                found += [
                    Case(f"{e}/official/{op}", partial(self.official.sample, op)),
                    Case(f"{e}/official-async/{op}", partial(self.official_async.asample, op, loop)),
                ]
        found += [Case(f"{e}/raw/{op}", partial(self.raw_min.sample, op)) for op in RAW_OPS]
        return found


def _timing(summary: Summary | None) -> str:
    return f"{duration(summary.median)} ({spread(summary)})" if summary else "n/a"


def _report(
    outcome: Outcome,
    kits: list[Kit],
    samples: dict[str, list[float]],
    counted: dict[str, dict[str, dict[str, Any]]],
    supported: dict[str, set[str]],
    settings: Settings,
) -> None:
    data: dict[str, Any] = {"calls_per_sample": settings.op_calls, "engines": {}}
    for kit in kits:
        e = kit.engine
        engine_data: dict[str, Any] = {"counted": counted[e], "samples": {}, "summary": {}, "ratios": {}}
        for key, values in samples.items():
            if key.startswith(f"{e}/"):
                engine_data["samples"][key[len(e) + 1 :]] = values
                engine_data["summary"][key[len(e) + 1 :]] = Summary.of(values).as_dict()

        def got(key: str, e: str = e) -> list[float] | None:
            return samples.get(f"{e}/{key}")

        tc = table(
            f"Per operation, {kit.label}: statements / round trips / commits per call, counted at the driver",
            "operation",
            "statements: ours",
            kit.official_name,
            "floor",
            "round trips: ours",
            kit.official_name,
            "floor",
            "commits: ours",
            kit.official_name,
        )
        t = table(
            f"Per operation, {kit.label}, sync API: median per call ({settings.op_reps} interleaved samples of "
            f"{settings.op_calls} calls; IQR in brackets)",
            "operation",
            "ours",
            kit.official_name,
            "floor (replay)",
            "floor + serde",
            "ours ÷ floor",
            "ours ÷ (floor + serde)",
            "ours ÷ official",
        )
        ta = table(
            f"Per operation, {kit.label}, async API: median per call",
            "operation",
            "ours",
            kit.official_async_name,
            "ours ÷ official",
        )
        sync_official: list[Target] = []
        async_official: list[Target] = []
        vs_floor_serde: list[Target] = []
        for op in OPS:
            ours_s, floor_s, serde_s = got(f"ours/{op}"), got(f"floor/{op}"), got(f"floor+serde/{op}")
            off_s = got(f"official/{op}") if op in supported[e] else None
            assert ours_s is not None and floor_s is not None
            vs_floor = paired(ours_s, floor_s)
            vs_serde = paired(ours_s, serde_s) if serde_s else None
            vs_off = paired(ours_s, off_s) if off_s else None
            c = {who: counted[e].get(f"{who}/{op}", {}) for who in ("ours", "official", "floor")}

            def n(who: str, field: str, c: dict[str, dict[str, Any]] = c) -> str:
                return count(c[who][field]) if field in c[who] else "-"

            tc.add_row(
                op,
                *(n(who, "statements") for who in ("ours", "official", "floor")),
                *(n(who, "round_trips") for who in ("ours", "official", "floor")),
                n("ours", "commits"),
                n("official", "commits"),
            )
            t.add_row(
                op,
                _timing(Summary.of(ours_s)),
                _timing(Summary.of(off_s) if off_s else None),
                _timing(Summary.of(floor_s)),
                _timing(Summary.of(serde_s)) if serde_s else "",
                ratio_with_spread(vs_floor),
                ratio_with_spread(vs_serde) if vs_serde else "",
                ratio_with_spread(vs_off) if vs_off else "n/a",
            )
            engine_data["ratios"][op] = {
                "ours_over_floor": vs_floor.as_dict(),
                "ours_over_floor_serde": vs_serde.as_dict() if vs_serde else None,
                "ours_over_official": vs_off.as_dict() if vs_off else None,
            }
            if op in TARGET_OPS:
                sync_official.append(
                    Target(
                        "operations",
                        f"{kit.label}, sync API, {op}: SQLSaver ÷ {kit.official_name} (time per call)",
                        vs_off.median if vs_off else math.nan,
                        OFFICIAL_LIMIT,
                    )
                )
                vs_floor_serde.append(
                    Target(
                        "operations",
                        f"{kit.label}, sync API, {op}: SQLSaver ÷ (replay floor + serde) (time per call)",
                        vs_serde.median if vs_serde else math.nan,
                        SERDE_LIMIT,
                    )
                )
            ours_a, off_a = got(f"ours-async/{op}"), got(f"official-async/{op}") if op in supported[e] else None
            assert ours_a is not None
            avs = paired(ours_a, off_a) if off_a else None
            ta.add_row(
                op,
                _timing(Summary.of(ours_a)),
                _timing(Summary.of(off_a) if off_a else None),
                ratio_with_spread(avs) if avs else "n/a",
            )
            engine_data["ratios"][op]["async_ours_over_official"] = avs.as_dict() if avs else None
            if op in TARGET_OPS:
                async_official.append(
                    Target(
                        "operations",
                        f"{kit.label}, async API, {op}: SQLSaver ÷ {kit.official_async_name} (time per call)",
                        avs.median if avs else math.nan,
                        OFFICIAL_LIMIT,
                    )
                )
        for op in RAW_OPS:
            raw_s = got(f"raw/{op}")
            assert raw_s is not None
            c_raw = counted[e][f"raw/{op}"]
            tc.add_row(op, "", "", count(c_raw["statements"]), "", "", count(c_raw["round_trips"]), "", "")
            t.add_row(op, "", "", _timing(Summary.of(raw_s)), "", "", "", "")
        put_commits = counted[e].get("ours/put", {}).get("commits", math.nan)
        outcome.targets += [*sync_official, *async_official, *vs_floor_serde]
        outcome.targets.append(
            Target(
                "operations",
                f"{kit.label}, sync API, put: SQLSaver's commits per put",
                float(put_commits),
                1.0,
                unit="",
            )
        )
        outcome.tables += [tc, t, ta]
        data["engines"][e] = engine_data
    outcome.data = data
    outcome.notes.append(
        "floor (replay) = the very statements ours sent for that call, captured at the DBAPI cursor and replayed "
        "with fresh keys on a bare driver connection (same statements, round trips and commits). floor + serde = "
        "the same plus the serializer work any saver does (dump the written values, load the values read). "
        "Ratios: median "
        "[p25-p75] of per-sample paired ratios. n/a: the official saver does not implement copy_thread. "
        "delete_thread and copy_thread have no target. "
        "list (limit=10) is called as LangGraph does (root namespace); list (whole thread) without a namespace."
    )
