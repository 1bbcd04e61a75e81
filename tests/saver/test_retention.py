"""Retention as a library call (`SQLSaver.retain` / `aretain`) and the background
`RetentionSweeper`, sync and async, on each engine."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from checkpoint_sql import InvalidArgumentError, RetentionSweeper, SchemaNotReadyError, SQLSaver
from tests import lineages
from tests.cli_helpers import age, all_tuples, orphans
from tests.helpers import count, long_thread, put_chain, snapshot


@pytest.fixture
def saver(db_url: str) -> SQLSaver:
    lineages.build(db_url)
    with SQLSaver(db_url) as s:
        yield s


def per_namespace(saver: SQLSaver) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for thread, ns, _ in all_tuples(saver):
        counts[(thread, ns)] = counts.get((thread, ns), 0) + 1
    return counts


async def test_sync_and_async_retention_agree_and_leave_no_orphans(saver: SQLSaver) -> None:
    before = snapshot(saver)
    dry = saver.retain(keep_last=1, dry_run=True)
    adry = await saver.aretain(keep_last=1, dry_run=True)
    assert snapshot(saver) == before
    assert dry.to_json() == adry.to_json() and dry.checkpoints_deleted > 0

    done = await saver.aretain(keep_last=1)
    assert done.to_json()["totals"] == dry.to_json()["totals"]
    assert orphans(saver) == {"blobs": [], "writes": []}
    kept = per_namespace(saver)
    delta = {(n.thread_id, n.checkpoint_ns): n.kept_for_delta for n in done.namespaces}
    assert all(n == 1 + delta.get(key, 0) for key, n in kept.items())
    assert lineages.compiled("log", saver).get_state(lineages.cfg("log")).values["log"] == lineages.LOG
    assert saver.retain(keep_last=1).namespaces == [], "a second run finds nothing more"


def payload_bytes(saver: SQLSaver) -> int:
    """The payload bytes the tables hold, metadata aside: what a report's
    ``bytes_freed`` counts."""
    t = saver.tables
    columns = (t.checkpoints.c.checkpoint, t.blobs.c.blob, t.blobs.c.manifest, t.writes.c.blob, t.parts.c.data)
    with saver.db.sync_engine.connect() as conn:
        return sum(
            int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(c)), 0))).scalar_one())
            for c in columns
        )


def test_the_bytes_a_report_frees_are_the_bytes_deleting_frees(saver: SQLSaver) -> None:
    """List parts included: keeping only ``long``'s fork (ten messages) collects the
    elements and pages of the 72-message conversation."""
    long_thread(saver)
    before, parts = payload_bytes(saver), count(saver, "parts")
    estimate = saver.retain(keep_last=1, dry_run=True).to_json()["totals"]["bytes_freed"]
    done = saver.retain(keep_last=1).to_json()["totals"]["bytes_freed"]
    assert estimate == done == before - payload_bytes(saver)
    assert count(saver, "parts") < parts - 60


def test_retention_only_touches_the_threads_it_is_given(saver: SQLSaver) -> None:
    before = all_tuples(saver)
    report = saver.retain(keep_last=2, threads=["agent", "nobody"])
    after = all_tuples(saver)
    assert {n.thread_id for n in report.namespaces} == {"agent"}
    assert {k: v for k, v in before.items() if k[0] != "agent"} == {k: v for k, v in after.items() if k[0] != "agent"}


def test_older_than_counts_from_the_checkpoints_own_time(saver: SQLSaver) -> None:
    assert saver.retain(older_than=timedelta(days=1), dry_run=True).namespaces == []
    for thread in lineages.GRAPHS:
        age(saver, thread, days=2)
    trimmed = saver.retain(older_than="1d", keep_last=1)
    assert {n.thread_id for n in trimmed.namespaces} == set(lineages.GRAPHS)
    assert trimmed.threads_emptied == []
    assert saver.retain(older_than="1d").threads_emptied, "without keep_last, idle threads go entirely"
    assert all_tuples(saver) == {} and orphans(saver) == {"blobs": [], "writes": []}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs keep_last, older_than or both"),
        ({"keep_last": 0}, "keep_last must be an int >= 1"),
        ({"keep_last": True}, "keep_last must be an int >= 1"),
        ({"older_than": "30"}, "malformed duration '30'"),
        ({"older_than": "0s"}, "longer than zero"),
        ({"older_than": timedelta(0)}, "positive timedelta"),
    ],
)
def test_a_bad_policy_is_refused_before_anything_runs(saver: SQLSaver, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        saver.retain(**kwargs)  # type: ignore[arg-type]


def test_the_sweeper_prunes_in_the_background_until_stopped(saver: SQLSaver) -> None:
    reports = []
    with RetentionSweeper(saver, every=0.05, keep_last=1, on_report=reports.append) as sweeper:
        deadline = time.monotonic() + 20
        while sweeper.sweeps < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sweeper.running
    assert not sweeper.running and sweeper.sweeps >= 2 and sweeper.last_error is None
    assert reports[0].checkpoints_deleted > 0 and reports[-1].namespaces == []
    assert orphans(saver) == {"blobs": [], "writes": []}


async def test_the_async_sweeper_runs_on_the_event_loop(saver: SQLSaver) -> None:
    async with RetentionSweeper(saver, every=timedelta(milliseconds=50), keep_last=2) as sweeper:
        for _ in range(400):
            if sweeper.sweeps >= 2:
                break
            await asyncio.sleep(0.02)
    assert not sweeper.running and sweeper.sweeps >= 2 and sweeper.last_error is None
    assert all(n <= 2 for (thread, _), n in per_namespace(saver).items() if thread != "log")


def test_a_second_start_changes_nothing_and_a_stopped_sweeper_still_sweeps_on_demand(saver: SQLSaver) -> None:
    sweeper = RetentionSweeper(saver, every=3600, keep_last=2)
    with sweeper:
        sweeper.start()
        deadline = time.monotonic() + 20
        while sweeper.sweeps < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert sweeper.sweeps == 1, "one sweep at start, none for the second start"
    put_chain(saver, "later", 3)
    report = sweeper.sweep()
    assert report is not None and report.checkpoints_deleted == 1, "a stop ends the loop, not sweep()"


def test_a_failing_sweep_is_kept_and_the_sweeper_carries_on(tmp_path: Path) -> None:
    with SQLSaver(f"sqlite:///{tmp_path}/never-set-up.db") as saver:
        sweeper = RetentionSweeper(saver, every=0.02, older_than="30d")
        sweeper.start()
        deadline = time.monotonic() + 10
        while sweeper.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert sweeper.running, "one failed sweep does not end the sweeper"
        sweeper.stop()
    assert isinstance(sweeper.last_error, SchemaNotReadyError) and sweeper.sweeps == 0
