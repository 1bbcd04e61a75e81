"""A PostgreSQL primary with a hot standby: the application names both hosts and lets
libpq pick the writable one (``target_session_attrs=read-write``), and operators
inspect the standby, which serves reads only.

The read-only commands of `tests/admin/test_cli_read.py` (threads, history, show, diff,
stats, migrate --show, doctor) run here against the *standby*, on lineages written
through the multi-host URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from checkpoint_sql import ReadOnlyError, SessionStore, SQLSaver
from tests import lineages
from tests.admin.test_cli_read import (
    test_diff_says_which_channels_changed_and_how,
    test_doctor_and_migrate_show_report_a_healthy_current_schema,
    test_history_infers_the_next_nodes_langgraph_computes,
    test_history_shows_forks_interrupts_errors_and_sends,
    test_show_decodes_values_messages_and_pending_writes,
    test_show_rebuilds_a_delta_channel_from_its_snapshot_and_writes,
    test_stats_counts_what_the_tables_hold,
    test_threads_lists_every_thread_with_its_figures,
    test_threads_sort_filter_and_paginate,
)
from tests.cli_helpers import run
from tests.clusters.conftest import failover_pair
from tests.clusters.servers import STANDBY_PORTS, FailoverPair

__all__ = [
    "test_diff_says_which_channels_changed_and_how",
    "test_doctor_and_migrate_show_report_a_healthy_current_schema",
    "test_history_infers_the_next_nodes_langgraph_computes",
    "test_history_shows_forks_interrupts_errors_and_sends",
    "test_show_decodes_values_messages_and_pending_writes",
    "test_show_rebuilds_a_delta_channel_from_its_snapshot_and_writes",
    "test_stats_counts_what_the_tables_hold",
    "test_threads_lists_every_thread_with_its_figures",
    "test_threads_sort_filter_and_paginate",
]

SESSION = {"app_name": "app", "user_id": "ann", "session_id": "on-the-primary"}


@pytest.fixture(scope="module")
def pair() -> Iterator[FailoverPair]:
    with failover_pair(STANDBY_PORTS) as started:
        yield started


@pytest.fixture(scope="module")
def url(pair: FailoverPair) -> str:
    """The standby's URL, after the lineages (and a session) were written through the
    multi-host URL, standby listed first: libpq must skip it for the primary."""
    standby_first = (
        f"postgresql://postgres@/postgres?host=127.0.0.1:{STANDBY_PORTS[1]}&host=127.0.0.1:{STANDBY_PORTS[0]}"
    )
    writable = standby_first + "&target_session_attrs=read-write"
    lineages.build(writable)
    with SessionStore.from_conn_string(writable) as sessions:
        sessions.setup()
        sessions.create_session(**SESSION, state={"app:theme": "dark"})
    assert pair.standby is not None
    return pair.standby.url


def server_port(url: str) -> int:
    with SQLSaver.from_conn_string(url) as saver, saver.db.sync_engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT inet_server_port()").scalar_one())


def test_a_url_naming_both_hosts_reaches_the_primary_from_the_saver_and_the_cli(
    pair: FailoverPair, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server_port(pair.url()) == STANDBY_PORTS[0]
    migrated = run(capsys, "migrate", "--url", pair.url())
    assert migrated.code == 0, migrated.err
    listed = run(capsys, "threads", "--url", pair.url(), "--json")
    assert listed.code == 0 and listed.json["total"] == len(lineages.GRAPHS)


def test_the_standby_refuses_writes_and_doctor_says_it_is_one(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLSaver.from_conn_string(url) as saver, pytest.raises(Exception, match="read-only transaction"):
        saver.delete_thread("agent")
    checks = {c["name"]: c for c in run(capsys, "doctor", "--url", url, "--json").json["checks"]}
    assert checks["standby"]["status"] == "info" and "read" in checks["standby"]["detail"]


def test_a_read_only_session_store_reads_the_standby_and_refuses_writes(url: str) -> None:
    with SessionStore.from_conn_string(url, read_only=True) as viewer:
        seen = viewer.get_session(**SESSION)
        assert seen is not None and seen.state == {"app:theme": "dark"}
        assert [s.id for s in viewer.list_sessions(app_name="app", user_id="ann")] == [SESSION["session_id"]]
        with pytest.raises(ReadOnlyError):
            viewer.delete_session(**SESSION)


def test_the_standby_holds_every_row_of_the_primary(pair: FailoverPair, url: str) -> None:
    tables = ("cpsql_checkpoints", "cpsql_blobs", "cpsql_writes")
    counts = []
    for server in (pair.primary.url, url):
        with psycopg.connect(server) as conn:
            counts.append([conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in tables])
    assert counts[0] == counts[1] and all(c and c[0] for c in counts[0])
