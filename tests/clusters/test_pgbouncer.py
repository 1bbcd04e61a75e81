"""PgBouncer in transaction mode: each transaction may run in another server session,
so nothing may live in a session between two transactions.

The saver keeps nothing there: every operation is one transaction, the migration lock
is transaction-scoped (``pg_advisory_xact_lock``), and with ``prepare_threshold=none``
in the URL psycopg prepares no statement server-side (PgBouncer 1.18, Debian 12's,
cannot carry prepared statements across server sessions; 1.21+ can, with
``max_prepared_statements``). `checkpoint-sql doctor` recognises the pooler and says
whether that setting is right.
"""

from __future__ import annotations

import pytest

from checkpoint_sql import ConfigurationError, RetryingSaver, SQLSaver
from tests.cli_helpers import run
from tests.clusters.load import arun_threads, components_at_head, run_threads, set_up_in_processes
from tests.clusters.servers import PgBouncer
from tests.retry.test_faults import reference

NO_PREPARE = "?prepare_threshold=none"


def pooler_check(capsys: pytest.CaptureFixture[str], url: str) -> dict[str, object] | None:
    ran = run(capsys, "doctor", "--url", url, "--json")
    found = [c for c in ran.json["checks"] if c["name"] == "pooler"]
    return found[0] if found else None


def test_doctor_recognises_transaction_pooling_and_asks_for_prepared_statements_off(
    pgbouncer: PgBouncer, pgbouncer_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pgbouncer.url(pgbouncer_database)
    with SQLSaver.from_conn_string(url + NO_PREPARE) as saver:
        saver.setup()

    prepared = pooler_check(capsys, url)
    assert prepared is not None and prepared["status"] == "fail", prepared
    assert "prepare_threshold=none" in str(prepared["advice"])

    unprepared = pooler_check(capsys, url + NO_PREPARE)
    assert unprepared is not None and unprepared["status"] == "ok", unprepared

    assert pooler_check(capsys, pgbouncer.server_url(pgbouncer_database)) is None, "no pooler on a direct connection"


def test_setup_from_several_processes_at_once_through_the_pooler(pgbouncer: PgBouncer, pgbouncer_database: str) -> None:
    url = pgbouncer.url(pgbouncer_database) + NO_PREPARE
    assert set_up_in_processes([url] * 4) == ["set up"] * 4
    assert components_at_head(url)


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_concurrent_runs_through_the_pooler_end_as_on_in_memory_saver(
    pgbouncer: PgBouncer, pgbouncer_database: str, api: str
) -> None:
    """More concurrent runs than the pool has server connections (10): PgBouncer
    queues transactions, and every run still ends exactly as on `InMemorySaver`."""
    url = pgbouncer.url(pgbouncer_database) + NO_PREPARE
    threads = [f"{api}-{n}" for n in range(24)]
    if api == "sync":
        with RetryingSaver.from_conn_string(url) as saver:
            saver.setup()
            outcomes = run_threads(saver, threads, workers=12)
    else:
        async with RetryingSaver.from_conn_string(url) as saver:
            await saver.asetup()
            outcomes = await arun_threads(saver, threads)
    assert all(outcome == reference() for outcome in outcomes.values())
    print(f"\n[pgbouncer] {api}: {len(outcomes)} concurrent runs identical to InMemorySaver")


def test_prepared_statements_through_the_pooler_fail_with_the_setting_to_change(
    pgbouncer: PgBouncer, pgbouncer_database: str
) -> None:
    """Left on (psycopg prepares a statement on its fifth run in a session), prepared
    statements meet the wrong server session as soon as runs overlap. The error names
    the setting, and is not retried: repeating cannot make a pooler keep them."""
    with RetryingSaver.from_conn_string(pgbouncer.url(pgbouncer_database)) as saver:
        saver.setup()
        with pytest.raises(ConfigurationError, match="prepare_threshold=none"):
            run_threads(saver, [f"prepared-{n}" for n in range(24)], workers=12)
