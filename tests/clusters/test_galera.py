"""A 3-node MariaDB Galera cluster, every node writable.

What Galera changes for a checkpointer: a transaction is certified against the whole
cluster when it commits, so two nodes writing the same rows at once make one of them
fail with a deadlock error (1213) at COMMIT; a node leaving or rejoining the cluster
answers 1047 ("WSREP has not yet prepared node for application use"); named locks
(`GET_LOCK`) are not replicated. `RetryingSaver` retries the first two, the URL lists
every node (``?host=a&host=b&host=c``) so that new connections go to one that is up and
ready, and migrations lock with a replicated row instead.

The suites of `tests/clusters/test_*_through_clusters.py` also run here; this module
loads the cluster from several processes at once and kills a node under them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from checkpoint_sql import RetryingSaver, SQLSaver
from checkpoint_sql.core import migrate
from checkpoint_sql.retry.transient import is_transient
from tests.cli_helpers import run
from tests.clusters.load import (
    PATIENT,
    RetryLog,
    components_at_head,
    runner_result,
    set_up_in_processes,
    start_runner,
)
from tests.clusters.servers import GaleraCluster, GaleraNode
from tests.graphs import agent_graph, question
from tests.helpers import checkpoint, config
from tests.retry.test_faults import QUESTION, reference
from tests.saver.test_graphs import shape

TABLES = ("cpsql_checkpoints", "cpsql_blobs", "cpsql_writes")
PROCESSES, RUNS_EACH = 4, 6


def rows_digest(node: GaleraNode, database: str) -> dict[str, tuple[int, str]]:
    """Per saver table on `node`: its row count and a digest of its rows, in key order."""
    conn = node.connect(database)
    try:
        digests = {}
        with conn.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"SELECT * FROM {table}")
                rows = sorted(repr(row) for row in cursor.fetchall())
                digests[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return digests
    finally:
        conn.close()


def same_rows_on_every_node(galera: GaleraCluster, database: str) -> int:
    """Assert every node holds the same rows; returns how many rows each holds."""
    digests = [rows_digest(node, database) for node in galera.nodes]
    assert digests[0] == digests[1] == digests[2], digests
    return sum(count for count, _ in digests[0].values())


def run_over_the_nodes(galera: GaleraCluster, database: str, prefix: str) -> list[Any]:
    """`PROCESSES` runner processes started at once, process i preferring node i mod 3."""
    return [
        start_runner(galera.url(database, first=i % len(galera.nodes)), f"{prefix}{i}", RUNS_EACH)
        for i in range(PROCESSES)
    ]


def test_migrations_from_two_processes_on_each_node_at_once_run_once(
    galera: GaleraCluster, galera_database: str
) -> None:
    single_node_urls = [node.url(galera_database) for node in galera.nodes for _ in range(2)]
    assert set_up_in_processes(single_node_urls) == ["set up"] * 6
    for url in single_node_urls[::2]:
        assert components_at_head(url)
    conn = galera.nodes[2].connect(galera_database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM checkpoint_sql_migration_locks")
            assert cursor.fetchone() == (0,), "a migration lock was left behind"
    finally:
        conn.close()


@pytest.mark.parametrize("holder", ["a node that left the cluster", "an ended session of this node"])
def test_a_migration_lock_left_by_a_dead_holder_is_taken_over_at_once(
    galera: GaleraCluster, galera_database: str, holder: str
) -> None:
    """A migrator killed with its node (or its session) leaves the lock row behind,
    with most of its lease to run. The next `setup()` sees its holder is gone and
    takes the lock over rather than waiting out the lease."""
    node = galera.nodes[0]
    conn = node.connect(galera_database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW STATUS LIKE 'wsrep_gcomm_uuid'")
            row = cursor.fetchone()
            assert row is not None
            gone = "00000000-0000-0000-0000-000000000000/1" if holder.startswith("a node") else f"{row[1]}/999999"
            cursor.execute(
                "CREATE TABLE checkpoint_sql_migration_locks (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "holder VARCHAR(100) NOT NULL, expires_at DOUBLE NOT NULL)"
            )
            cursor.execute(
                "INSERT INTO checkpoint_sql_migration_locks VALUES ('checkpoint_sql saver .cpsql_', %s, %s)",
                (gone, time.time() + 3600),
            )
    finally:
        conn.close()
    started = time.monotonic()
    with SQLSaver.from_conn_string(node.url(galera_database)) as saver:
        saver.setup()
        target = saver.tables.migrations
        assert saver.db.run(migrate.current, target) == migrate.head(target)
    assert time.monotonic() - started < 5


def test_doctor_reports_the_node_and_the_causal_reads_of_its_sessions(
    galera: GaleraCluster, galera_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = galera.url(galera_database)
    with SQLSaver.from_conn_string(url) as saver:
        saver.setup()
    doctor = run(capsys, "doctor", "--url", url, "--json").json
    check = next(c for c in doctor["checks"] if c["name"] == "galera")
    assert check["status"] == "ok", check
    assert "Synced in a Primary component of 3 nodes" in check["detail"] and "wsrep_sync_wait=1" in check["detail"]


def test_processes_writing_through_different_nodes_end_as_on_in_memory_saver(
    galera: GaleraCluster, galera_database: str
) -> None:
    started = time.monotonic()
    processes = run_over_the_nodes(galera, galera_database, "spread")
    results = [runner_result(p) for p in processes]
    took = time.monotonic() - started
    outcomes = [o for r in results for o in r["outcomes"].values()]
    assert outcomes == [repr(reference())] * PROCESSES * RUNS_EACH
    rows = same_rows_on_every_node(galera, galera_database)
    print(
        f"\n[galera] {PROCESSES} processes over 3 nodes: {len(outcomes)} runs identical to InMemorySaver, "
        f"retries={sum(r['retries'] for r in results)}, {took:.1f} s, rows identical on 3 nodes={rows}"
    )


def test_interrupted_threads_resumed_through_another_node_each_time_end_as_on_in_memory_saver(
    galera: GaleraCluster, galera_database: str
) -> None:
    """Human-in-the-loop handed around the cluster: each thread pauses for approval
    through one node and is resumed through the next, four times, eight threads at
    once. Causal reads make the node that resumes see the interrupt another node just
    committed."""
    savers = [
        RetryingSaver(SQLSaver.from_conn_string(node.url(galera_database)), policy=PATIENT) for node in galera.nodes
    ]
    savers[0].setup()
    graphs = [agent_graph(approval=True).compile(checkpointer=s) for s in savers]
    memory = agent_graph(approval=True).compile(checkpointer=InMemorySaver())

    def hand_around(graph_for: Callable[[int], Any], thread_id: str) -> tuple[Any, list[Any]]:
        thread = {"configurable": {"thread_id": thread_id}}
        graph_for(0).invoke(question(QUESTION), thread)
        hop = 0
        while graph_for(hop).get_state(thread).next:
            hop += 1
            graph_for(hop).invoke(Command(resume="yes"), thread)
        last = graph_for(hop + 1)
        return last.get_state(thread).values, shape(list(last.get_state_history(thread)))

    expected = hand_around(lambda _: memory, "reference")
    with ThreadPoolExecutor(8) as pool:
        handed = list(pool.map(lambda n: hand_around(lambda hop: graphs[(n + hop) % 3], f"handed-{n}"), range(8)))
    for saver in savers:
        saver.close()
    assert handed == [expected] * 8
    rows = same_rows_on_every_node(galera, galera_database)
    print(f"\n[galera] 8 threads resumed through another node at each of 4 interrupts: identical, {rows} rows")


def test_one_thread_written_through_two_nodes_at_once_retries_certification_conflicts(
    galera: GaleraCluster, galera_database: str
) -> None:
    """Two savers, on node 1 and node 2, store the same checkpoint and the same task's
    writes at the same moment, over and over. Galera certifies one commit and fails
    the other with a deadlock (1213); the retry finds the row there: a checkpoint
    overwritten with itself, writes inserted once. (A lone statement in autocommit the
    node retries itself, `wsrep_retry_autocommit`; a put of a checkpoint with a channel
    value is a transaction of two statements, whose conflict reaches the client.)"""
    rounds = 60
    savers = [
        RetryingSaver(SQLSaver.from_conn_string(galera.nodes[n].url(galera_database)), policy=PATIENT) for n in (0, 1)
    ]
    savers[0].setup()
    start = threading.Barrier(2)
    checkpoints = [checkpoint({"round": n}) for n in range(rounds)]

    def write(saver: RetryingSaver[str]) -> None:
        for n, stored in enumerate(checkpoints):
            start.wait()
            saver.put(config("shared"), stored, {"step": n}, {"round": 1})
            saver.put_writes(config("shared", stored["id"]), [("messages", n), ("other", "x")], task_id="task")

    with RetryLog() as retries:
        workers = [threading.Thread(target=write, args=(s,)) for s in savers]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    for saver in savers:
        saver.close()
    with SQLSaver.from_conn_string(galera.nodes[2].url(galera_database)) as reader:
        listed = list(reader.list(config("shared")))
    assert len(listed) == rounds and all(len(t.pending_writes or []) == 2 for t in listed)
    conflicts = [e for e in retries.errors if "1213" in e or "Deadlock" in e]
    print(f"\n[galera] same rows from two nodes: {2 * rounds * 2} writes, {retries.retries} retries ({conflicts})")
    assert conflicts, "no certification conflict happened: the test proved nothing"
    same_rows_on_every_node(galera, galera_database)


def test_a_node_killed_under_load_loses_no_run_and_rejoins_with_the_same_rows(
    galera: GaleraCluster, galera_database: str
) -> None:
    victim, survivor = galera.nodes[1], galera.nodes[2]
    processes = run_over_the_nodes(galera, galera_database, "killed")
    deadline = time.monotonic() + 120
    while checkpoints_on(survivor, galera_database) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    with Progress(survivor, galera_database) as progress:
        killed_at = time.monotonic()
        victim.kill()
        results = [runner_result(p) for p in processes]
    finished_after = time.monotonic() - killed_at
    stall = progress.longest_pause(after=killed_at)
    outcomes = [o for r in results for o in r["outcomes"].values()]
    assert outcomes == [repr(reference())] * PROCESSES * RUNS_EACH

    rejoin_started = time.monotonic()
    victim.start()
    galera.wait_synced(victim)
    rejoined = time.monotonic() - rejoin_started
    rows = same_rows_on_every_node(galera, galera_database)
    errors = sorted({e for r in results for e in r["errors"]})
    print(
        f"\n[galera] node {victim.name} SIGKILLed under load: {len(outcomes)} runs identical to InMemorySaver, "
        f"retries={sum(r['retries'] for r in results)}, commits stalled {stall:.1f} s (until the cluster "
        f"evicted the node), runs done {finished_after:.1f} s after the kill, "
        f"rejoined in {rejoined:.1f} s with the same rows as the others ({rows}); errors retried: {errors}"
    )


class Progress:
    """Samples how many checkpoints `node` holds, every 50 ms, while in the block."""

    def __init__(self, node: GaleraNode, database: str) -> None:
        self.node, self.database = node, database
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.monotonic(), checkpoints_on(self.node, self.database)))

    def longest_pause(self, *, after: float) -> float:
        """The longest time after `after` during which no new checkpoint was committed."""
        longest, since, last = 0.0, after, -1
        for at, count in self.samples:
            if at < after:
                last = count
            elif count != last:
                longest, since, last = max(longest, at - since), at, count
        return longest


def checkpoints_on(node: GaleraNode, database: str) -> int:
    try:
        conn = node.connect(database)
    except pymysql.MySQLError:
        return 0
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM cpsql_checkpoints")
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    except pymysql.MySQLError:
        return 0
    finally:
        conn.close()


def test_a_node_cut_off_from_the_cluster_is_skipped_and_its_refusal_is_transient(
    galera: GaleraCluster, galera_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Isolated from its peers (``gmcast.isolate``), a node leaves the primary component
    and refuses every query with 1047, as while it leaves or rejoins. The classifier
    calls that transient, doctor says what it means, and a URL listing the node first
    connects to the next one."""
    isolated = galera.nodes[2]
    with SQLSaver.from_conn_string(galera.url(galera_database)) as saver:
        saver.setup()
    admin = isolated.connect()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'")
        deadline = time.monotonic() + 30
        while isolated.status("wsrep_ready") == "ON" and time.monotonic() < deadline:
            time.sleep(0.1)
        direct = SQLSaver.from_conn_string(isolated.url(galera_database))
        with pytest.raises(Exception) as refused:
            direct.get_tuple(config("any"))
        direct.close()
        assert "WSREP" in str(refused.value) and is_transient(refused.value), refused.value

        doctor = run(capsys, "doctor", "--url", isolated.url(galera_database), "--json").json
        connection = next(c for c in doctor["checks"] if c["name"] == "connection")
        assert connection["status"] == "fail" and "primary component" in connection["advice"], connection

        with SQLSaver.from_conn_string(galera.url(galera_database, first=2)) as saver:
            assert saver.get_tuple(config("any")) is None
            with saver.db.sync_engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT @@port").scalar() == galera.nodes[0].port
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
        admin.close()
        galera.wait_synced(isolated)
