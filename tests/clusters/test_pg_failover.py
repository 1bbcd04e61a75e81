"""The PostgreSQL primary crashes in the middle of graph runs and its synchronous
standby is promoted: with a URL naming both hosts (``target_session_attrs=read-write``),
`RetryingSaver` carries every run on to the new primary.

What must hold: every run ends as the fault-free run on `InMemorySaver` does; no
checkpoint whose `put` returned (acknowledged, so flushed and applied on the standby
by synchronous replication) is missing on the new primary; and the stall is bounded by
the time the failover takes. The failover is what a manager (Patroni, a cloud's HA)
would do: SIGKILL of the primary and every backend, a second to notice, then
``pg_ctl promote`` of the standby.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig

from checkpoint_sql import RetryingSaver, SQLSaver
from tests.clusters.conftest import failover_pair
from tests.clusters.load import PATIENT, RetryLog, arun_threads, run_threads
from tests.clusters.servers import FAILOVER_PORTS, FailoverPair
from tests.graphs import AgentState, Flaky
from tests.retry.test_faults import reference

RUNS = 10
NOTICE = 1.0
"""Seconds between the crash and the promotion: a failover manager's detection time."""


@pytest.fixture
def pair() -> Iterator[FailoverPair]:
    with failover_pair(FAILOVER_PORTS) as started:
        yield started


class AcknowledgingSaver(SQLSaver):
    """An `SQLSaver` that notes each checkpoint whose `put` returned, and when."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acknowledged: list[tuple[float, tuple[str, str, str]]] = []
        self._lock = threading.Lock()

    def put(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        return self._note(super().put(config, *args, **kwargs))

    async def aput(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        return self._note(await super().aput(config, *args, **kwargs))

    def _note(self, stored: RunnableConfig) -> RunnableConfig:
        key = stored["configurable"]
        with self._lock:
            self.acknowledged.append((time.monotonic(), (key["thread_id"], key["checkpoint_ns"], key["checkpoint_id"])))
        return stored


class FailsOver:
    """The graph's tool node; its `after`-th call, across all runs, sets off the failover
    in the background while the runs go on."""

    def __init__(self, pair: FailoverPair, after: int) -> None:
        self.pair, self.after = pair, after
        self.calls = 0
        self.crashed_at = self.promoting_at = self.promoted_at = 0.0
        self._lock = threading.Lock()
        self.done = threading.Event()

    def __call__(self, state: AgentState) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            if self.calls == self.after:
                threading.Thread(target=self._fail_over, daemon=True).start()
        time.sleep(0.05)
        return Flaky()(state)

    def _fail_over(self) -> None:
        try:
            self.crashed_at = time.monotonic()
            self.pair.primary.kill()
            time.sleep(NOTICE)
            self.promoting_at = time.monotonic()
            assert self.pair.standby is not None
            self.pair.standby.promote()
            self.promoted_at = time.monotonic()
        finally:
            self.done.set()


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_runs_finish_on_the_promoted_standby_with_no_acknowledged_checkpoint_lost(
    pair: FailoverPair, api: str
) -> None:
    tools = FailsOver(pair, after=2 * RUNS)
    inner = AcknowledgingSaver.from_conn_string(pair.url())
    assert isinstance(inner, AcknowledgingSaver)
    threads = [f"failover-{n}" for n in range(RUNS)]
    with RetryLog() as retries:
        if api == "sync":
            with RetryingSaver(inner, policy=PATIENT) as saver:
                saver.setup()
                outcomes = run_threads(saver, threads, workers=RUNS, tools=tools)
        else:
            async with RetryingSaver(inner, policy=PATIENT) as saver:
                await saver.asetup()
                outcomes = await arun_threads(saver, threads, tools=tools)
    assert tools.done.wait(30), "the failover never ran"

    assert all(outcomes[t] == reference() for t in threads)
    assert pair.standby is not None
    with psycopg.connect(pair.standby.url) as conn:
        stored = set(conn.execute("SELECT thread_id, checkpoint_ns, checkpoint_id FROM cpsql_checkpoints").fetchall())
    acknowledged = {key for _, key in inner.acknowledged}
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)}"
    before = sum(at < tools.crashed_at for at, _ in inner.acknowledged)
    on_new_primary = min(at for at, _ in inner.acknowledged if at > tools.promoting_at)
    assert before > 0 and retries.retries > 0, "the crash hit no operation: the test proved nothing"
    stall = on_new_primary - tools.crashed_at
    promotion = tools.promoted_at - tools.promoting_at
    print(
        f"\n[pg-failover] {api}: runs={len(outcomes)}, all identical to the fault-free run, "
        f"checkpoints acknowledged={len(acknowledged)} ({before} before the crash), all on the new primary "
        f"(rows compared={len(stored)}), retries={retries.retries}, stall={stall:.2f} s from the crash to the first "
        f"checkpoint on the new primary (notice {NOTICE:.1f} s, then promotion and first commit "
        f"{on_new_primary - tools.promoting_at:.2f} s; pg_ctl promote -w took {promotion:.2f} s); "
        f"errors retried: {sorted(retries.errors)}"
    )
    assert stall < NOTICE + promotion + 5
