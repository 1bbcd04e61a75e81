"""The read-only subcommands on each engine, against one database of real lineages
(built once per engine for this module): threads, history, show, diff, stats,
migrate --show and doctor, checked through their --json output. And history and show
print the very same whether lists are stored element by element or whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import SQLSaver
from checkpoint_sql.core import migrate
from checkpoint_sql.saver import codec
from tests import lineages
from tests.cli_helpers import run
from tests.conftest import ENGINES, fresh_database, require
from tests.helpers import count


@pytest.fixture(scope="module", params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require(request.param)
    with fresh_database(request.param, tmp_path_factory.mktemp("lineages")) as database:
        lineages.build(database)
        yield database


def history_of(capsys: pytest.CaptureFixture[str], url: str, thread: str) -> dict[str, Any]:
    ran = run(capsys, "history", thread, "--url", url, "--json")
    assert ran.code == 0, ran.err
    return {ns["checkpoint_ns"]: ns["checkpoints"] for ns in ran.json["namespaces"]}


def test_threads_lists_every_thread_with_its_figures(capsys: pytest.CaptureFixture[str], url: str) -> None:
    listed = run(capsys, "threads", "--url", url, "--json").json
    assert listed["total"] == 5
    by_id = {t["thread_id"]: t for t in listed["threads"]}
    assert set(by_id) == set(lineages.GRAPHS)
    with SQLSaver(url) as saver:
        for thread, row in by_id.items():
            assert row["checkpoints"] == len(list(saver.list({"configurable": {"thread_id": thread}})))
    assert by_id["review"]["namespaces"] == 2 and by_id["agent"]["namespaces"] == 1
    assert all(t["bytes"] > 0 and t["first"] <= t["last"] for t in by_id.values())
    assert [t["thread_id"] for t in listed["threads"]] == sorted(by_id, key=lambda t: by_id[t]["last"], reverse=True)


def test_threads_sort_filter_and_paginate(capsys: pytest.CaptureFixture[str], url: str) -> None:
    by_size = run(capsys, "threads", "--url", url, "--json", "--sort", "size").json["threads"]
    assert [t["bytes"] for t in by_size] == sorted((t["bytes"] for t in by_size), reverse=True)
    by_count = run(capsys, "threads", "--url", url, "--json", "--sort", "checkpoints", "--asc").json["threads"]
    assert [t["checkpoints"] for t in by_count] == sorted(t["checkpoints"] for t in by_count)
    by_id = [
        t["thread_id"] for t in run(capsys, "threads", "--url", url, "--json", "--sort", "id", "--asc").json["threads"]
    ]
    assert by_id == sorted(by_id)

    page = run(capsys, "threads", "--url", url, "--json", "--sort", "id", "--asc", "--limit", "2", "--offset", "2").json
    assert (page["total"], [t["thread_id"] for t in page["threads"]]) == (5, by_id[2:4])

    alice = run(capsys, "threads", "--url", url, "--json", "--filter", "user=alice").json
    assert [t["thread_id"] for t in alice["threads"]] == ["agent"] and alice["total"] == 1
    forked = run(capsys, "threads", "--url", url, "--json", "--filter", "source=update").json
    assert [t["thread_id"] for t in forked["threads"]] == ["agent"]
    assert run(capsys, "threads", "--url", url, "--json", "--filter", "step=99").json["total"] == 0


def test_history_infers_the_next_nodes_langgraph_computes(capsys: pytest.CaptureFixture[str], url: str) -> None:
    """Without the graph, from stored versions alone, `next` matches what
    LangGraph's own get_state_history says for every checkpoint of every thread."""
    with SQLSaver(url) as saver:
        for thread in lineages.GRAPHS:
            graph = lineages.compiled(thread, saver)
            expected = {
                s.config["configurable"]["checkpoint_id"]: sorted(s.next)
                for s in graph.get_state_history(lineages.cfg(thread))
            }
            ours = {c["checkpoint_id"]: sorted(c["next"]) for c in history_of(capsys, url, thread)[""]}
            assert ours == expected, thread

        review = lineages.compiled("review", saver)
        ns = (
            review.get_state(lineages.cfg("review"), subgraphs=True)
            .tasks[0]
            .state.config["configurable"]["checkpoint_ns"]
        )
        sub_config = {"configurable": {"thread_id": "review", "checkpoint_ns": ns}}
        expected = {
            s.config["configurable"]["checkpoint_id"]: sorted(s.next) for s in review.get_state_history(sub_config)
        }
    assert len(expected) == 3
    sub = history_of(capsys, url, "review")[ns]
    assert {c["checkpoint_id"]: sorted(c["next"]) for c in sub} == expected


def test_history_shows_forks_interrupts_errors_and_sends(capsys: pytest.CaptureFixture[str], url: str) -> None:
    agent = history_of(capsys, url, "agent")[""]
    assert [c["source"] for c in agent].count("update") == 1
    assert any(len(c["children"]) == 2 for c in agent), "the fork is a second child of its parent"
    latest_loop = max((c for c in agent if c["source"] == "loop"), key=lambda c: c["checkpoint_id"])
    assert latest_loop["interrupts"] == [{"question": "run lookup('green')?"}]
    assert [(t["node"], t["status"]) for t in latest_loop["tasks"]] == [("approve", "interrupted")]
    answered = [c for c in agent if c["interrupts"] == [{"question": "run lookup('red')?"}]]
    assert [t["status"] for t in answered[0]["tasks"] if t["node"] == "approve"] == ["done"]

    crash = history_of(capsys, url, "crash")[""]
    assert [(t["node"], t["status"]) for c in crash for t in c["tasks"] if t["status"] == "error"] == [
        ("tools", "error")
    ]

    fanout = history_of(capsys, url, "fanout")[""]
    fanned = next(c for c in fanout if c["next"] == ["work", "work", "work"])
    assert sorted((t["node"], t["status"]) for t in fanned["tasks"]) == [
        ("work", "done"),
        ("work", "done"),
        ("work", "interrupted"),
    ]
    assert fanned["interrupts"] == ["approve b?"]

    review = history_of(capsys, url, "review")
    assert len(review) == 2 and all(ns.startswith("review_flow:") for ns in review if ns)

    human = run(capsys, "history", "agent", "--url", url)
    assert "thread agent: " in human.out and "branch 2" in human.out and "⏸" in human.out


def test_show_decodes_values_messages_and_pending_writes(capsys: pytest.CaptureFixture[str], url: str) -> None:
    with SQLSaver(url) as saver:
        paused = next(
            t for t in saver.list(lineages.cfg("agent")) if any(w[1] == "__interrupt__" for w in t.pending_writes)
        )
    short = paused.config["configurable"]["checkpoint_id"][-12:]
    shown = run(capsys, "show", "agent", short, "--url", url, "--json").json
    assert shown["checkpoint_id"] == paused.config["configurable"]["checkpoint_id"]
    messages = shown["channels"]["messages"]["value"]
    assert messages[0] == {"type": "human", "content": "red green", "id": "human-0"}
    assert messages[-1]["tool_calls"][0]["args"] == {"word": messages[-1]["tool_calls"][0]["args"]["word"]}
    assert shown["metadata"]["user"] == "alice"
    assert any(w["channel"] == "__interrupt__" for w in shown["pending_writes"])

    one = run(capsys, "show", "agent", short, "--url", url, "--json", "--channel", "tool_calls").json
    assert (one["channel"], one["value"]) == ("tool_calls", paused.checkpoint["channel_values"]["tool_calls"])

    human = run(capsys, "show", "agent", short, "--url", url)
    assert "human: red green" in human.out and "→ lookup(word=" in human.out


def test_show_rebuilds_a_delta_channel_from_its_snapshot_and_writes(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    latest = run(capsys, "show", "log", "--url", url, "--json").json
    delta = latest["delta_channels"]["log"]
    assert (delta["seed"] or []) + [item for batch in delta["writes"] for item in batch] == lineages.LOG
    assert "log" not in latest["channels"]


def test_diff_says_which_channels_changed_and_how(capsys: pytest.CaptureFixture[str], url: str) -> None:
    agent = history_of(capsys, url, "agent")[""]
    fork = next(c for c in agent if c["source"] == "update")
    sibling = next(c for c in agent if c["parent_checkpoint_id"] == fork["parent_checkpoint_id"] and c is not fork)
    diff = run(capsys, "diff", "agent", sibling["checkpoint_id"], fork["checkpoint_id"], "--url", url, "--json").json
    assert (diff["from"]["source"], diff["to"]["source"]) == ("loop", "update")
    messages = diff["changed"]["messages"]
    assert messages["status"] == "changed"
    assert messages["changed"] == [
        {
            "before": {"type": "human", "content": "red green", "id": "human-0"},
            "after": {"type": "human", "content": "blue", "id": "human-0"},
        }
    ]
    assert "tool_calls" in diff["unchanged"]

    steps = sorted((c for c in agent if c["source"] == "loop"), key=lambda c: c["checkpoint_id"])
    grown = run(
        capsys, "diff", "agent", steps[1]["checkpoint_id"], steps[3]["checkpoint_id"], "--url", url, "--json"
    ).json
    assert grown["changed"]["messages"]["removed"] == [] and len(grown["changed"]["messages"]["added"]) == 1


def test_stats_counts_what_the_tables_hold(capsys: pytest.CaptureFixture[str], url: str) -> None:
    stats = run(capsys, "stats", "--url", url, "--json").json
    with SQLSaver(url) as saver:
        for table in ("checkpoints", "blobs", "parts", "writes"):
            assert stats["tables"][getattr(saver.tables, table).name]["rows"] == count(saver, table)
        assert stats["schema_revision"] == migrate.head(saver.tables.migrations)
    assert stats["threads"] == 5 and stats["namespaces"] == 6
    assert stats["oldest"] <= stats["newest"]
    assert stats["largest_threads"][0]["checkpoints"] >= stats["largest_threads"][-1]["checkpoints"]


def test_stats_of_a_thread_says_where_its_bytes_are(capsys: pytest.CaptureFixture[str], url: str) -> None:
    """Per namespace and channel: every stored version, the value the latest
    checkpoint reads, and the pending writes; the total is the thread's size in
    `threads`."""
    sizes = {t["thread_id"]: t["bytes"] for t in run(capsys, "threads", "--url", url, "--json").json["threads"]}
    with SQLSaver(url) as saver:
        for thread in ("agent", "review"):
            report = run(capsys, "stats", thread, "--url", url, "--json").json
            assert report["thread_id"] == thread and report["totals"]["bytes"] == sizes[thread]
            by_ns = {ns["checkpoint_ns"]: ns for ns in report["namespaces"]}
            assert set(by_ns) == {t.config["configurable"]["checkpoint_ns"] for t in saver.list(lineages.cfg(thread))}
            for ns, figures in by_ns.items():
                config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
                latest = saver.get_tuple(config)
                assert figures["latest_checkpoint_id"] == latest.config["configurable"]["checkpoint_id"]
                read_now = {c["channel"] for c in figures["channels"] if c["latest_bytes"] is not None}
                assert read_now == set(latest.checkpoint["channel_values"])
                assert figures["checkpoints"] == len(list(saver.list(config)))
                stored_writes = sum(len(t.pending_writes or []) for t in saver.list(config))
                assert sum(w["writes"] for w in figures["writes"]) == stored_writes
                parts = ("checkpoint_bytes", "channel_bytes", "write_bytes", "unreferenced_bytes")
                assert figures["bytes"] == sum(figures[part] for part in parts)
    notes = next(c for c in by_ns[""]["channels"] if c["channel"] == "notes")
    assert notes["versions"] >= 1 and 0 < notes["latest_bytes"] <= notes["bytes"]

    human = run(capsys, "stats", "agent", "--url", url)
    assert "thread agent: 7 checkpoints" in human.out and "messages" in human.out and "pending writes" in human.out
    assert "no such thread: 'ghost'" in run(capsys, "stats", "ghost", "--url", url).failed_cleanly()


def test_doctor_and_migrate_show_report_a_healthy_current_schema(capsys: pytest.CaptureFixture[str], url: str) -> None:
    doctor = run(capsys, "doctor", "--url", url, "--json")
    assert doctor.code == 0, doctor.out
    checks = {c["name"]: c for c in doctor.json["checks"]}
    assert checks["connection"]["status"] == "ok" and checks["schema"]["status"] == "ok"
    assert doctor.json["healthy"] and doctor.json["facts"]["server"]["version"]
    if url.startswith("sqlite"):
        assert checks["journal_mode"]["detail"].startswith("wal")
    shown = run(capsys, "migrate", "--show", "--url", url, "--json").json
    assert shown["up_to_date"] and shown["pending"] == []


def test_doctor_advises_on_a_database_that_needs_migrating(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path}/empty.db"
    (tmp_path / "empty.db").touch()
    doctor = run(capsys, "doctor", "--url", empty, "--json")
    assert doctor.code == 1
    schema = next(c for c in doctor.json["checks"] if c["name"] == "schema")
    assert schema["status"] == "fail" and "checkpoint-sql migrate" in schema["advice"]


def store_whole(saver: SQLSaver) -> None:
    """Rewrite every split value as one blob and drop the parts: the rows as they were
    stored before lists were split, same ids."""
    bl, pa = saver.tables.blobs, saver.tables.parts
    with saver.db.sync_engine.begin() as conn:
        parts: codec.Parts = {}
        for part in conn.execute(sa.select(pa)):
            parts.setdefault((bytes(part.thread_key), bytes(part.ns_key)), {})[bytes(part.digest)] = bytes(part.data)
        for row in conn.execute(sa.select(bl).where(bl.c.manifest.is_not(None))).all():
            same = [bl.c[k] == row._mapping[k] for k in ("thread_key", "ns_key", "channel", "version")]
            conn.execute(sa.update(bl).where(*same).values(blob=codec.blob_bytes(row, parts), manifest=None))
        conn.execute(sa.delete(pa))
    assert count(saver, "parts") == 0


def test_history_and_show_print_the_same_whether_lists_are_stored_split_or_whole(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    lineages.build(db_url)

    def out(*args: str) -> str:
        ran = run(capsys, *args, "--url", db_url)
        assert ran.code == 0, ran.err
        return ran.out

    def printed() -> list[str]:
        found = []
        for thread in lineages.GRAPHS:
            history = out("history", thread, "--json")
            found += [history, out("history", thread)]
            for ns in json.loads(history)["namespaces"]:
                first, last = (e["checkpoint_id"] for e in (ns["checkpoints"][0], ns["checkpoints"][-1]))
                found += [out("show", thread, first, "--ns", ns["checkpoint_ns"], "--json")]
                found += [out("show", thread, last, "--ns", ns["checkpoint_ns"])]
        return found

    split = printed()
    with SQLSaver(db_url) as saver:
        assert count(saver, "parts") > 0
        store_whole(saver)
    assert printed() == split
