"""The subcommands that change a database, on each engine: delete, copy, prune and
migrate, checked through their --json output and the rows left afterwards."""

from __future__ import annotations

import io
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from langgraph.types import Command

from checkpoint_sql import SQLSaver
from checkpoint_sql.core import migrate
from checkpoint_sql.core.ids import key_of
from tests import lineages
from tests.cli_helpers import age, all_tuples, orphans, run
from tests.helpers import count, snapshot


@pytest.fixture
def url(db_url: str) -> str:
    lineages.build(db_url)
    return db_url


def rows_of(saver: SQLSaver, thread: str) -> dict[str, int]:
    with saver.db.sync_engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).where(t.c.thread_key == key_of(thread))).scalar_one()
            for t in (saver.tables.checkpoints, saver.tables.blobs, saver.tables.writes)
        }


def test_delete_removes_the_threads_and_nothing_else(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with SQLSaver(url) as saver:
        before = all_tuples(saver)
        deleted = run(capsys, "delete", "agent", "review", "--yes", "--url", url, "--json")
        assert deleted.code == 0, deleted.err
        assert deleted.json["deleted"] == ["agent", "review"]
        assert (
            rows_of(saver, "agent")
            == rows_of(saver, "review")
            == dict.fromkeys((t.name for t in (saver.tables.checkpoints, saver.tables.blobs, saver.tables.writes)), 0)
        )
        after = all_tuples(saver)
    assert deleted.json["checkpoints"] == len(before) - len(after)
    assert after == {k: v for k, v in before.items() if k[0] not in ("agent", "review")}


def test_delete_and_copy_ask_first_and_refuse_without_a_terminal(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with SQLSaver(url) as saver:
        before = snapshot(saver)
        refused = run(capsys, "delete", "agent", "--url", url)
        assert "--yes" in refused.failed_cleanly()
        assert "--yes" in run(capsys, "copy", "agent", "agent-2", "--url", url).failed_cleanly()
        assert snapshot(saver) == before


class Terminal(io.StringIO):
    """Standard input as a person at a terminal, typing the given answers."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_prune_and_delete_ask_and_respect_the_answer(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SQLSaver(url) as saver:
        before = snapshot(saver)
        monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
        declined = run(capsys, "prune", "--keep-last", "1", "--url", url)
        assert declined.code == 1 and "would delete" in declined.err and "nothing done" in declined.err
        monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
        assert run(capsys, "delete", "agent", "--url", url).code == 1
        assert snapshot(saver) == before

        monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
        pruned = run(capsys, "prune", "--keep-last", "1", "--url", url)
        assert pruned.code == 0 and "deleted" in pruned.out
        monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
        assert run(capsys, "delete", "agent", "--url", url).code == 0
        assert saver.get_tuple(lineages.cfg("agent")) is None


def test_copy_duplicates_a_thread_that_reads_back_the_same(capsys: pytest.CaptureFixture[str], url: str) -> None:
    copied = run(capsys, "copy", "review", "review-copy", "--yes", "--url", url, "--json")
    assert copied.code == 0, copied.err
    with SQLSaver(url) as saver:
        tuples = all_tuples(saver)
        originals = {k: v for k, v in tuples.items() if k[0] == "review"}
        assert copied.json["checkpoints"] == len(originals)
        for (_, ns, checkpoint_id), original in originals.items():
            copy = tuples[("review-copy", ns, checkpoint_id)]
            assert (copy.checkpoint, copy.metadata, copy.pending_writes) == (
                original.checkpoint,
                original.metadata,
                original.pending_writes,
            )
    assert (
        "already has checkpoints"
        in run(capsys, "copy", "review", "review-copy", "--yes", "--url", url).failed_cleanly()
    )


def test_prune_dry_run_reports_and_changes_nothing(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with SQLSaver(url) as saver:
        before = snapshot(saver)
        dry = run(capsys, "prune", "--keep-last", "2", "--dry-run", "--url", url, "--json").json
        assert snapshot(saver) == before
        real = run(capsys, "prune", "--keep-last", "2", "--yes", "--url", url, "--json").json
    assert dry["dry_run"] and not real["dry_run"]
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {k: v for k, v in real.items() if k != "dry_run"}
    human = run(capsys, "prune", "--keep-last", "1", "--dry-run", "--url", url)
    assert "dry run" in human.out and "would delete" in human.out


def test_prune_keep_last_leaves_no_orphans_and_keeps_threads_working(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with SQLSaver(url) as saver:
        latest = {t: saver.get_tuple(lineages.cfg(t)) for t in lineages.GRAPHS}
        pruned = run(capsys, "prune", "--keep-last", "2", "--yes", "--url", url, "--json")
        assert pruned.code == 0, pruned.err
        report = pruned.json
        assert orphans(saver) == {"blobs": [], "writes": []}
        for ns in report["namespaces"]:
            assert ns["kept"] == 2 + ns["kept_for_delta"]
        log = next(ns for ns in report["namespaces"] if ns["thread_id"] == "log")
        assert log["kept_for_delta"] > 0, "the log's latest checkpoint is rebuilt from older ones"

        for thread in lineages.GRAPHS:
            now = saver.get_tuple(lineages.cfg(thread))
            assert (now.checkpoint, now.pending_writes) == (latest[thread].checkpoint, latest[thread].pending_writes)
        assert lineages.compiled("log", saver).get_state(lineages.cfg("log")).values["log"] == lineages.LOG
        resumed = lineages.compiled("review", saver).invoke(Command(resume="ok"), lineages.cfg("review"))
        assert resumed["draft"] == "essay (written) [ok]"
        assert orphans(saver) == {"blobs": [], "writes": []}


def test_prune_older_than_expires_idle_threads_or_trims_them(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with SQLSaver(url) as saver:
        age(saver, "crash", 40)
        age(saver, "fanout", 40)
        trimmed = run(
            capsys,
            "prune",
            "--older-than",
            "30d",
            "--keep-last",
            "1",
            "--thread",
            "fanout",
            "--yes",
            "--url",
            url,
            "--json",
        )
        assert trimmed.json["totals"]["threads_emptied"] == 0
        assert len(list(saver.list(lineages.cfg("fanout")))) == 1

        expired = run(capsys, "prune", "--older-than", "30d", "--yes", "--url", url, "--json").json
        assert {ns["thread_id"] for ns in expired["namespaces"]} == {"crash", "fanout"}
        assert expired["totals"]["threads_emptied"] == 2
        assert rows_of(saver, "crash")[saver.tables.checkpoints.name] == 0
        assert saver.get_tuple(lineages.cfg("agent")) is not None, "recent threads are untouched"
        assert orphans(saver) == {"blobs": [], "writes": []}
        cutoff = datetime.fromisoformat(expired["cutoff"])
        assert abs(cutoff - (datetime.now(timezone.utc) - timedelta(days=30))) < timedelta(minutes=1)


def test_migrate_creates_and_upgrades_the_schema(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    created = run(capsys, "migrate", "--url", db_url, "--json").json
    with SQLSaver(db_url) as saver:
        head = migrate.head(saver.tables.migrations)
        assert created == {"before": None, "after": head, "changed": True}
        assert run(capsys, "migrate", "--url", db_url, "--json").json["changed"] is False

        target = saver.tables.migrations
        with saver.db.sync_engine.begin() as conn:  # back to the first revision, as an older release left it
            config = target.config()
            config.attributes.update(connection=conn, target=target)
            command.downgrade(config, "0001")
        assert count(saver, "checkpoints") == 0
    shown = run(capsys, "migrate", "--show", "--url", db_url, "--json").json
    assert (shown["current"], [p["revision"] for p in shown["pending"]]) == ("0001", ["0002", "0003", "0004"])
    doctor = run(capsys, "doctor", "--url", db_url, "--json").json
    assert next(c for c in doctor["checks"] if c["name"] == "schema")["status"] == "warn"
    assert run(capsys, "migrate", "--url", db_url, "--json").json == {"before": "0001", "after": head, "changed": True}
