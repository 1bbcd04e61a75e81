"""Retention when several processes run it on one database: a lease lets one sweep of
a kind run at a time, a crashed holder's lease expires, the others skip; plus the
per-thread override and the veto hook.

The last test is the real thing: sweeper processes and graph-running writer
processes on one SQLite file or PostgreSQL schema at once."""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from checkpoint_sql import (
    EXEMPT,
    InvalidArgumentError,
    Lease,
    NamespaceOutcome,
    RetentionPolicy,
    RetentionSweeper,
    SQLSaver,
    SQLStore,
)
from tests import lineages
from tests.cli_helpers import all_tuples, orphans
from tests.conftest import fresh_database, require
from tests.graphs import agent_graph, question
from tests.helpers import snapshot

KEEP_LAST = 2


def lease(saver: SQLSaver, holder: str, ttl: float = 30.0) -> Lease:
    return Lease(saver.db, saver.tables.leases, "retention", ttl=ttl, holder=holder)


def wait_until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_one_holder_at_a_time_until_released_or_expired(saver: SQLSaver) -> None:
    a, b = lease(saver, "replica-a"), lease(saver, "replica-b", ttl=0.3)
    assert a.acquire() and not b.acquire(), "a held lease is not taken"
    assert a.acquire() and a.renew(), "the holder may take it again and renew it"
    assert a.release() and b.acquire(), "released, the next one takes it"
    assert not a.acquire()
    assert wait_until(a.acquire), "an expired lease is taken over"
    assert not b.renew() and not b.release(), "the old holder learns it lost the lease"
    assert a.release(hold_for=30) and not b.acquire(), "a finished sweep can keep the others off"


async def test_the_async_lease_is_the_same_row(saver: SQLSaver) -> None:
    a, b = lease(saver, "replica-a"), lease(saver, "replica-b")
    assert await a.aacquire() and not b.acquire() and not await b.aacquire()
    assert await a.arenew() and await a.arelease() and await b.aacquire()


def test_a_sweeper_skips_while_another_process_holds_the_lease(saver: SQLSaver) -> None:
    lineages.write_lineages(saver)
    other = lease(saver, "crashed-replica", ttl=0.5)
    assert other.acquire()
    before = snapshot(saver)
    sweeper = RetentionSweeper(saver, every=60, keep_last=1)
    assert sweeper.sweep() is None and sweeper.skipped == 1 and sweeper.sweeps == 0
    assert snapshot(saver) == before, "a skipped sweep deletes nothing"
    assert wait_until(lambda: sweeper.sweep() is not None), "the crashed holder's lease expired"
    assert sweeper.last_report is not None and sweeper.last_report.checkpoints_deleted > 0
    assert not other.acquire(), "a finished sweep holds the lease for one interval"
    nightly = RetentionSweeper(saver, every=60, keep_last=1, lease_name="retention-nightly")
    assert nightly.sweep() is not None, "a sweep of another kind has a lease of its own"


def per_thread(saver: SQLSaver) -> dict[str, int]:
    counts: dict[str, int] = {}
    for thread, _, _ in all_tuples(saver):
        counts[thread] = counts.get(thread, 0) + 1
    return counts


async def test_an_override_exempts_threads_or_gives_them_their_own_policy(saver: SQLSaver) -> None:
    lineages.write_lineages(saver)
    before = per_thread(saver)
    seen: dict[str, Mapping[str, Any]] = {}

    def override(thread_id: str, metadata: Mapping[str, Any]) -> RetentionPolicy | object | None:
        seen[thread_id] = metadata
        if metadata.get("source") == "update":  # a human edited it: keep it all
            return EXEMPT
        if metadata.get("user") == "bob":
            return RetentionPolicy(keep_last=2)
        return None

    report = await saver.aretain(keep_last=1, override=override)  # type: ignore[arg-type]
    after = per_thread(saver)
    assert set(seen) == set(lineages.GRAPHS), "every thread is asked about"
    assert seen["review"]["user"] == "bob" and "step" in seen["review"], "the latest checkpoint's metadata"
    assert (report.exempt, report.overridden) == (["agent"], ["review"])
    assert after["agent"] == before["agent"]
    assert after["review"] == 2 * 2, "keep_last=2 in each of its two namespaces"
    assert after["crash"] == 1 and after["fanout"] == 1
    assert orphans(saver) == {"blobs": [], "writes": []}

    with pytest.raises(InvalidArgumentError, match="retention override returned 3 for thread"):
        saver.retain(keep_last=1, override=lambda thread, metadata: 3)  # type: ignore[arg-type,return-value]


def test_a_veto_sees_what_would_go_and_keeps_the_thread(saver: SQLSaver) -> None:
    lineages.write_lineages(saver)
    before = per_thread(saver)
    planned: dict[str, list[str]] = {}

    def veto(thread_id: str, outcomes: Sequence[NamespaceOutcome]) -> bool:
        planned[thread_id] = [i for n in outcomes for i in n.deleted_ids]
        return thread_id == "agent"

    report = saver.retain(keep_last=1, veto=veto)
    after = per_thread(saver)
    assert report.vetoed == ["agent"] and after["agent"] == before["agent"]
    assert planned["agent"] and "agent" not in {n.thread_id for n in report.namespaces}
    deleted = {n.thread_id: n.deleted_ids for n in report.namespaces if n.checkpoint_ns == ""}
    assert all(planned[t] == ids for t, ids in deleted.items() if t != "review"), "it deletes what it showed"
    assert after["crash"] == 1


def test_the_store_ttl_sweeper_skips_while_another_replica_holds_its_lease(db_url: str) -> None:
    with SQLStore(db_url) as store:
        store.setup()
        other = Lease(store.db, store.tables.leases, "store_ttl", ttl=30, holder="other-replica")
        assert other.acquire()
        store.start_ttl_sweeper(sweep_interval_minutes=0.0005)  # every 30 ms
        assert wait_until(lambda: store._sweeper.skipped >= 2)
        assert other.release()
        skipped = store._sweeper.skipped
        time.sleep(0.3)
        assert store.stop_ttl_sweeper(timeout=5)
    assert store._sweeper.skipped <= skipped + 1, "released, this replica sweeps again"


# --- several processes, one database ---------------------------------------------------------


def _pinned(thread_id: str, metadata: Mapping[str, Any]) -> object | None:
    return EXEMPT if metadata.get("pinned") else None


def _sweep_in_a_process(url: str, seconds: float, out: str, barrier: Any) -> None:
    """Sweep every 50 ms for `seconds`, recording when each sweep ran and what it deleted."""
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("checkpoint_sql").addHandler(handler)
    sweeps: list[dict[str, Any]] = []
    with SQLSaver(url) as saver:
        retain = saver.retain

        def timed(**kwargs: Any) -> Any:
            start = time.time()
            report = retain(**kwargs)
            deleted = [[n.thread_id, n.checkpoint_ns, i] for n in report.namespaces for i in n.deleted_ids]
            sweeps.append({"start": start, "end": time.time(), "deleted": deleted})
            return report

        saver.retain = timed  # type: ignore[method-assign]
        sweeper = RetentionSweeper(saver, every=0.05, keep_last=KEEP_LAST, override=_pinned, lease_ttl=5)
        barrier.wait()
        with sweeper:
            time.sleep(seconds)
    Path(out).write_text(json.dumps({"sweeps": sweeps, "skipped": sweeper.skipped, "warnings": warnings}))


def _write_in_a_process(url: str, seconds: float, name: str, barrier: Any) -> None:
    """Run agent graphs on a few threads (one of them pinned) for `seconds`."""
    with SQLSaver(url) as saver:
        graph = agent_graph().compile(checkpointer=saver)
        barrier.wait()
        deadline = time.monotonic() + seconds
        for run in range(10_000):
            if time.monotonic() > deadline:
                break
            thread = f"{name}-{run % 3}"
            config = {"configurable": {"thread_id": thread}, "metadata": {"pinned": thread.endswith("-0")}}
            graph.invoke(question("red green"), config)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_replicas_sweep_one_database_while_graphs_write(engine: str, tmp_path: Path) -> None:
    require(engine)
    with fresh_database(engine, tmp_path) as url:
        with SQLSaver(url) as saver:
            saver.setup()
        ctx = multiprocessing.get_context("spawn")
        sweepers, writers, seconds = 3, 2, 4.0
        barrier = ctx.Barrier(sweepers + writers)
        outs = [str(tmp_path / f"sweeper-{i}.json") for i in range(sweepers)]
        procs = [ctx.Process(target=_sweep_in_a_process, args=(url, seconds, out, barrier)) for out in outs]
        procs += [
            ctx.Process(target=_write_in_a_process, args=(url, seconds, f"w{i}", barrier)) for i in range(writers)
        ]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join(120)
            assert [p.exitcode for p in procs] == [0] * len(procs)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()

        results = [json.loads(Path(out).read_text()) for out in outs]
        assert [r["warnings"] for r in results] == [[]] * sweepers, "no sweep failed"
        runs = sorted((s["start"], s["end"], i) for i, r in enumerate(results) for s in r["sweeps"])
        assert len(runs) >= 3 and sum(r["skipped"] for r in results) > 0
        for (_, end, who), (start, _, other) in itertools.pairwise(runs):
            assert who == other or end <= start, "two replicas never sweep at the same time"
        deleted = [tuple(d) for r in results for s in r["sweeps"] for d in s["deleted"]]
        assert deleted and len(deleted) == len(set(deleted)), "no checkpoint is deleted twice"

        with SQLSaver(url) as saver:
            left = all_tuples(saver)
            assert not any(thread.endswith("-0") for thread, _, _ in deleted), "pinned threads are exempt"
            for thread, ns, checkpoint_id in deleted:
                newer = [k for k in left if k[:2] == (thread, ns) and k[2] > checkpoint_id]
                assert len(newer) >= KEEP_LAST, "only checkpoints beyond the newest KEEP_LAST went"
                assert (thread, ns, checkpoint_id) not in left
            assert orphans(saver) == {"blobs": [], "writes": []}
            graph = agent_graph().compile(checkpointer=saver)
            for thread in {k[0] for k in left}:
                state = graph.get_state({"configurable": {"thread_id": thread}})
                assert state.values["messages"][-1].content == "answer: RED, GREEN", "every thread still resumes"
