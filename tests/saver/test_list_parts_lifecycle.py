"""List parts through a thread's whole life: deleted, pruned, retained, swept, copied,
written by two writers at once, raced by a put while deleted or copied, and carried
across the 0004 migration.

A split list (`checkpoint_sql.saver.elements`) is a blob row holding a manifest and the
parts it reaches, stored once per thread and namespace and shared by every version
that holds them. Whatever removes checkpoints must remove exactly the parts no
remaining manifest reaches: none left behind (`orphans`), none a survivor needs
taken away (`missing`), and every surviving checkpoint reads back as it did. (Every
non-empty msgpack list is split in these tests, see conftest.)
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from checkpoint_sql import MissingPartsError, RetentionSweeper, SQLSaver
from checkpoint_sql.core import migrate
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.dialects.columns import payload as payload_type
from checkpoint_sql.saver import elements, operations
from checkpoint_sql.saver.statements import SaverStatements
from tests.cli_helpers import orphans, run
from tests.graphs import agent_graph, parent_graph
from tests.helpers import checkpoint, config, messages

SERDE = JsonPlusSerializer()
SUB = "review:1"
"""The subgraph namespace of the branchy threads."""


# --- what the database holds ------------------------------------------------------------


def part_audit(saver: SQLSaver) -> dict[str, dict[tuple[bytes, bytes], set[bytes]]]:
    """Per (thread key, namespace key): the parts stored that no manifest of the
    namespace's blob rows reaches (``orphans``), and the digests those manifests reach
    that are not stored (``missing``). A sound database has neither."""
    bl, pa = saver.tables.blobs, saver.tables.parts
    stored: dict[tuple[bytes, bytes], dict[bytes, bytes]] = {}
    manifests: dict[tuple[bytes, bytes], list[bytes]] = {}
    with saver.db.sync_engine.connect() as conn:
        for tkey, nkey, digest, data in conn.execute(sa.select(pa.c.thread_key, pa.c.ns_key, pa.c.digest, pa.c.data)):
            stored.setdefault((bytes(tkey), bytes(nkey)), {})[bytes(digest)] = bytes(data)
        query = sa.select(bl.c.thread_key, bl.c.ns_key, bl.c.manifest).where(bl.c.manifest.is_not(None))
        for tkey, nkey, manifest in conn.execute(query):
            manifests.setdefault((bytes(tkey), bytes(nkey)), []).append(bytes(manifest))
    audit: dict[str, dict[tuple[bytes, bytes], set[bytes]]] = {"orphans": {}, "missing": {}}
    for namespace in stored.keys() | manifests.keys():
        parts = stored.get(namespace, {})
        reached: set[bytes] = set()
        for manifest in manifests.get(namespace, []):
            for page in elements.pages_of(manifest):
                reached.add(page)
                if page in parts:
                    reached.update(elements.digests_in(parts[page]))
            reached.update(elements.tail_of(manifest))
        if parts.keys() - reached:
            audit["orphans"][namespace] = parts.keys() - reached
        if reached - parts.keys():
            audit["missing"][namespace] = reached - parts.keys()
    return audit


def assert_sound(saver: SQLSaver) -> None:
    """No part, blob or write left that nothing reaches, and nothing reached missing."""
    assert part_audit(saver) == {"orphans": {}, "missing": {}}
    assert orphans(saver) == {"blobs": [], "writes": []}


def parts_of(saver: SQLSaver, thread_id: str, ns: str | None = None) -> dict[bytes, bytes]:
    """The parts stored under a thread (and namespace), by digest."""
    pa = saver.tables.parts
    query = sa.select(pa.c.digest, pa.c.data).where(pa.c.thread_key == key_of(thread_id))
    if ns is not None:
        query = query.where(pa.c.ns_key == key_of(ns))
    with saver.db.sync_engine.connect() as conn:
        return {bytes(d): bytes(data) for d, data in conn.execute(query)}


def digests_of(*lists: list[Any]) -> set[bytes]:
    """Every part (element and page) the split form of these lists reaches."""
    found: set[bytes] = set()
    for value in lists:
        split = elements.split(*SERDE.dumps_typed(value))
        assert split is not None
        found.update(split.parts)
    return found


Key = tuple[str, str, str]


def reads(saver: SQLSaver, thread_id: str | None = None) -> dict[Key, Any]:
    """What `get_tuple` returns for every checkpoint (of a thread, or of all), by
    (thread, namespace, id): values, metadata and pending writes. (Parents are left
    out: a survivor whose parent was deleted becomes a root.)"""
    found = {}
    for listed in saver.list(None if thread_id is None else {"configurable": {"thread_id": thread_id}}):
        got = saver.get_tuple(listed.config)
        assert got is not None
        c = got.config["configurable"]
        found[(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])] = (
            got.checkpoint["channel_values"],
            got.metadata,
            got.pending_writes,
        )
    return found


def key(stored: dict[str, Any]) -> Key:
    c = stored["configurable"]
    return (c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])


def assert_survivors_read_back(before: dict[Key, Any], after: dict[Key, Any], expected: Iterable[Key]) -> None:
    """Exactly `expected` survived, each reading back as it did before."""
    assert sorted(after) == sorted(expected)
    assert {k: before[k] for k in after} == after


# --- building threads ------------------------------------------------------------------


def put_list(
    saver: SQLSaver, parent: dict[str, Any], value: list[Any], version: str, *, run_id: str, step: int
) -> dict[str, Any]:
    """A checkpoint child of `parent` whose ``messages`` channel moves to `version`;
    ``topic`` (a dict: one whole blob) stays at the version the first put gave it."""
    cp = checkpoint({"messages": value, "topic": {"name": "lists"}}, {"messages": version, "topic": 1})
    new_versions: dict[str, Any] = {"messages": version}
    if parent["configurable"].get("checkpoint_id") is None:
        new_versions["topic"] = 1
    return saver.put(parent, cp, {"source": "loop", "step": step, "run_id": run_id}, new_versions)


@dataclass
class Branchy:
    """A thread whose root namespace grows a conversation past a page of digests
    (`main`), forks from its third checkpoint with other messages (`fork`, written
    last, so it holds the namespace's latest checkpoint), and has a subgraph namespace
    (`sub`) whose lists share their first messages with `main`."""

    thread: str
    main: list[dict[str, Any]]
    fork: list[dict[str, Any]]
    sub: list[dict[str, Any]]
    main_lists: list[list[Any]]
    fork_lists: list[list[Any]]
    sub_lists: list[list[Any]]


def branchy(saver: SQLSaver, thread: str) -> Branchy:
    main_lists = [messages(n) for n in range(4, 41, 4)]
    fork_lists = [messages(12) + messages(n, tag="fork") for n in (2, 4, 6)]
    sub_lists = [messages(3) + messages(n, tag="sub") for n in (1, 2, 3)]
    main, parent = [], config(thread)
    for step, value in enumerate(main_lists, start=1):
        parent = put_list(saver, parent, value, f"{step:06}.main", run_id="run-main", step=step)
        main.append(parent)
    fork, parent = [], main[2]  # main[2] holds messages(12)
    for step, value in enumerate(fork_lists, start=4):
        parent = put_list(saver, parent, value, f"{step:06}.fork", run_id="run-fork", step=step)
        fork.append(parent)
    sub, parent = [], config(thread, ns=SUB)
    for step, value in enumerate(sub_lists, start=1):
        parent = put_list(saver, parent, value, f"{step:06}.sub", run_id="run-sub", step=step)
        sub.append(parent)
    return Branchy(thread, main, fork, sub, main_lists, fork_lists, sub_lists)


def messages_of(saver: SQLSaver, stored: dict[str, Any]) -> Any:
    found = saver.get_tuple(stored)
    assert found is not None
    return found.checkpoint["channel_values"]["messages"]


# --- the builders and the audit themselves --------------------------------------------


def test_a_branchy_thread_stores_each_element_once_per_namespace(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    assert set(parts_of(saver, "t", "")) == digests_of(*b.main_lists, *b.fork_lists)
    assert set(parts_of(saver, "t", SUB)) == digests_of(*b.sub_lists)
    longest = elements.split(*SERDE.dumps_typed(b.main_lists[-1]))
    assert longest is not None and len(elements.pages_of(longest.manifest)) == 1, "the trunk outgrows a page"
    assert_sound(saver)


def test_the_audit_sees_an_orphan_and_a_missing_part(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    pa = saver.tables.parts
    fork_only = sorted(digests_of(*b.fork_lists) - digests_of(*b.main_lists))
    with saver.db.sync_engine.begin() as conn:
        conn.execute(sa.delete(pa).where(pa.c.digest == fork_only[0]))
        conn.execute(sa.insert(pa).values(thread_key=key_of("t"), ns_key=key_of(""), digest=b"\x00" * 16, data=b"\xc0"))
    audit = part_audit(saver)
    assert audit["missing"] == {(key_of("t"), key_of("")): {fork_only[0]}}
    assert audit["orphans"] == {(key_of("t"), key_of("")): {b"\x00" * 16}}


# --- deleting and pruning --------------------------------------------------------------


def test_delete_thread_takes_every_part_of_the_thread_and_no_other(saver: SQLSaver) -> None:
    branchy(saver, "t")
    branchy(saver, "u")
    before = reads(saver)
    saver.delete_thread("t")
    assert parts_of(saver, "t") == {}
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [k for k in before if k[0] == "u"])


async def test_adelete_thread_takes_every_part_of_the_thread_and_no_other(asaver: SQLSaver) -> None:
    branchy(asaver, "t")
    branchy(asaver, "u")
    before = reads(asaver)
    await asaver.adelete_thread("t")
    assert parts_of(asaver, "t") == {}
    assert_sound(asaver)
    assert_survivors_read_back(before, reads(asaver), [k for k in before if k[0] == "u"])


def test_delete_for_runs_takes_the_parts_only_the_deleted_run_reached(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    before = reads(saver)
    saver.delete_for_runs(["run-fork"])
    assert set(parts_of(saver, "t", "")) == digests_of(*b.main_lists)
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [key(c) for c in b.main + b.sub])

    saver.delete_for_runs(["run-sub", "run-main"])
    assert parts_of(saver, "t") == {}
    assert_sound(saver)


async def test_adelete_for_runs_takes_the_parts_only_the_deleted_run_reached(asaver: SQLSaver) -> None:
    b = branchy(asaver, "t")
    before = reads(asaver)
    await asaver.adelete_for_runs(["run-fork", "run-sub"])
    assert set(parts_of(asaver, "t")) == digests_of(*b.main_lists)
    assert_sound(asaver)
    assert_survivors_read_back(before, reads(asaver), [key(c) for c in b.main])


def test_deleting_the_trunk_run_keeps_the_elements_a_fork_inherited(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    before = reads(saver)
    saver.delete_for_runs(["run-main"])
    assert set(parts_of(saver, "t", "")) == digests_of(*b.fork_lists)
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [key(c) for c in b.fork + b.sub])


def test_prune_keep_latest_keeps_the_parts_of_each_namespaces_latest(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    before = reads(saver)
    saver.prune(["t"], strategy="keep_latest")
    assert set(parts_of(saver, "t", "")) == digests_of(b.fork_lists[-1])
    assert set(parts_of(saver, "t", SUB)) == digests_of(b.sub_lists[-1])
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [key(b.fork[-1]), key(b.sub[-1])])


async def test_aprune_keep_latest_keeps_the_parts_of_each_namespaces_latest(asaver: SQLSaver) -> None:
    b = branchy(asaver, "t")
    before = reads(asaver)
    await asaver.aprune(["t"], strategy="keep_latest")
    assert_sound(asaver)
    assert_survivors_read_back(before, reads(asaver), [key(b.fork[-1]), key(b.sub[-1])])


def test_prune_delete_takes_every_part_of_the_threads(saver: SQLSaver) -> None:
    branchy(saver, "t")
    branchy(saver, "u")
    branchy(saver, "v")
    before = reads(saver)
    saver.prune(["t", "u"], strategy="delete")
    assert parts_of(saver, "t") == parts_of(saver, "u") == {}
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [k for k in before if k[0] == "v"])


# --- retention -------------------------------------------------------------------------


def _newest(configs: list[dict[str, Any]], n: int) -> list[Key]:
    return sorted((key(c) for c in configs), key=lambda k: k[2])[-n:]


def test_retain_keep_last_keeps_the_parts_of_the_newest(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    before = reads(saver)
    saver.retain(keep_last=3)
    survivors = _newest(b.main + b.fork, 3) + _newest(b.sub, 3)
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), survivors)
    assert set(parts_of(saver, "t", "")) == digests_of(*(before[k][0]["messages"] for k in survivors if k[1] == ""))


def _age(saver: SQLSaver, configs: list[dict[str, Any]], days: int) -> None:
    """Move these checkpoints' retention clock back `days`."""
    cp = saver.tables.checkpoints
    with saver.db.sync_engine.begin() as conn:
        for c in configs:
            t, ns, checkpoint_id = key(c)
            conn.execute(
                sa.update(cp)
                .where(cp.c.thread_key == key_of(t), cp.c.ns_key == key_of(ns), cp.c.checkpoint_id == checkpoint_id)
                .values(created_us=cp.c.created_us - days * 86_400_000_000)
            )


def test_retain_older_than_keeps_what_a_young_fork_inherited_from_an_old_trunk(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    _age(saver, b.main, days=3)
    before = reads(saver)
    report = saver.retain(older_than=timedelta(days=1))
    assert report.checkpoints_deleted == len(b.main)
    assert set(parts_of(saver, "t", "")) == digests_of(*b.fork_lists)
    assert_sound(saver)
    assert_survivors_read_back(before, reads(saver), [key(c) for c in b.fork + b.sub])

    _age(saver, b.fork + b.sub, days=3)
    saver.retain(older_than="1d")
    assert parts_of(saver, "t") == {}
    assert_sound(saver)


async def test_aretain_keeps_the_parts_of_the_newest(asaver: SQLSaver) -> None:
    b = branchy(asaver, "t")
    before = reads(asaver)
    await asaver.aretain(keep_last=1)
    assert_sound(asaver)
    assert_survivors_read_back(before, reads(asaver), [key(b.fork[-1]), key(b.sub[-1])])


def test_one_sweep_of_the_retention_sweeper_leaves_no_orphan_part(saver: SQLSaver) -> None:
    threads = [branchy(saver, "t"), branchy(saver, "u")]
    before = reads(saver)
    report = RetentionSweeper(saver, every=3600, keep_last=2).sweep()
    assert report is not None
    assert_sound(saver)
    survivors = [k for b in threads for k in _newest(b.main + b.fork, 2) + _newest(b.sub, 2)]
    assert report.checkpoints_deleted == len(before) - len(survivors)
    assert_survivors_read_back(before, reads(saver), survivors)


async def test_one_async_sweep_leaves_no_orphan_part(asaver: SQLSaver) -> None:
    b = branchy(asaver, "t")
    before = reads(asaver)
    report = await RetentionSweeper(asaver, every=3600, keep_last=3).asweep()
    assert report is not None
    assert_sound(asaver)
    assert_survivors_read_back(before, reads(asaver), _newest(b.main + b.fork, 3) + _newest(b.sub, 3))


# --- real graphs -----------------------------------------------------------------------


def _chat(graph: Any, thread_id: str, turns: range) -> None:
    for turn in turns:
        text = f"alpha bravo {turn} " + "filler " * 30
        graph.invoke({"messages": [HumanMessage(content=text, id=f"q{turn}")], "tool_calls": 0}, config(thread_id))


def test_real_graphs_keep_working_through_retention_pruning_copying_and_deleting(saver: SQLSaver) -> None:
    """An agent conversation with a fork (`update_state` on an earlier checkpoint,
    then run on), and a graph paused inside a subgraph: every step leaves the parts
    sound and the graphs' state as it was, and the graphs run on afterwards."""
    chat, review = agent_graph().compile(checkpointer=saver), parent_graph().compile(checkpointer=saver)
    _chat(chat, "chat", range(3))
    earlier = next(s for s in chat.get_state_history(config("chat")) if s.next == ("tools",))
    forked = chat.update_state(earlier.config, {"messages": [HumanMessage("charlie delta", id="fork-q")]})
    chat.invoke(None, forked)
    review.invoke({"draft": " a draft ", "notes": []}, config("review"))
    assert any(ns for _, ns, _ in reads(saver, "review")), "the subgraph has its own namespace"
    assert_sound(saver)

    def states() -> dict[str, Any]:
        return {t: g.get_state(config(t)).values for t, g in (("chat", chat), ("review", review))}

    before, state = reads(saver), states()
    saver.retain(keep_last=2)
    assert_sound(saver)
    after = reads(saver)
    assert {k: before[k] for k in after} == after and len(after) < len(before)
    assert states() == state

    _chat(chat, "chat", range(3, 5))
    review.invoke(Command(resume="approved"), config("review"))
    assert_sound(saver)
    state = states()
    saver.prune(["chat", "review"], strategy="keep_latest")
    assert_sound(saver)
    assert states() == state

    saver.copy_thread("chat", "chat-copy")
    saver.delete_thread("chat")
    assert_sound(saver)
    assert chat.get_state(config("chat-copy")).values == state["chat"]
    _chat(chat, "chat-copy", range(5, 6))
    grown = chat.get_state(config("chat-copy")).values["messages"]
    assert [m.id for m in grown] == [m.id for m in state["chat"]["messages"]] + ["q5"]  # "ai-final" is replaced
    assert_sound(saver)


# --- putting again what was deleted ------------------------------------------------------


def test_the_saver_that_pruned_a_branch_stores_its_elements_again(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    saver.prune(["t"], strategy="keep_latest")  # the trunk's own elements go: the fork is the latest
    again = put_list(saver, b.fork[-1], b.main_lists[-1], "000099.again", run_id="run-again", step=99)
    assert messages_of(saver, again) == b.main_lists[-1]
    assert_sound(saver)


def test_the_saver_that_deleted_runs_stores_their_elements_again(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    saver.delete_for_runs(["run-fork"])
    again = put_list(saver, b.main[-1], b.fork_lists[-1], "000099.again", run_id="run-again", step=99)
    assert messages_of(saver, again) == b.fork_lists[-1]
    assert_sound(saver)


async def test_the_saver_that_retained_stores_the_deleted_elements_again(asaver: SQLSaver) -> None:
    b = branchy(asaver, "t")
    _age(asaver, b.main, days=3)
    await asaver.aretain(older_than="1d")
    cp = checkpoint({"messages": b.main_lists[-1]}, {"messages": "000099.again"})
    again = await asaver.aput(b.fork[-1], cp, {"run_id": "run-again"}, {"messages": "000099.again"})
    found = await asaver.aget_tuple(again)
    assert found is not None and found.checkpoint["channel_values"]["messages"] == b.main_lists[-1]
    assert_sound(asaver)


def test_the_sweepers_saver_stores_swept_elements_again(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    RetentionSweeper(saver, every=3600, keep_last=1).sweep()
    again = put_list(saver, b.fork[-1], b.main_lists[-1], "000099.again", run_id="run-again", step=99)
    assert messages_of(saver, again) == b.main_lists[-1]
    assert_sound(saver)


@pytest.mark.parametrize(
    "delete",
    [
        pytest.param(lambda s: s.delete_thread("t"), id="delete_thread"),
        pytest.param(lambda s: s.prune(["t"], strategy="keep_latest"), id="prune"),
        pytest.param(lambda s: s.delete_for_runs(["run-main"]), id="delete_for_runs"),
        pytest.param(lambda s: s.retain(keep_last=1), id="retain"),
    ],
)
def test_a_saver_stores_again_what_another_saver_of_the_process_deleted(
    saver: SQLSaver, db_url: str, delete: Any
) -> None:
    b = branchy(saver, "t")
    with SQLSaver.from_conn_string(db_url) as other:
        delete(other)
    survivors = list(saver.list(config("t")))
    parent = survivors[0].config if survivors else config("t")
    again = put_list(saver, parent, b.main_lists[-1], "000099.again", run_id="run-again", step=99)
    assert messages_of(saver, again) == b.main_lists[-1]
    assert_sound(saver)


def test_a_saver_stores_again_what_another_process_pruned_once_it_reads_the_thread(
    saver: SQLSaver, db_url: str
) -> None:
    b = branchy(saver, "t")
    other = Database(db_url)  # what `checkpoint-sql prune` in another process runs
    try:
        st = SaverStatements(saver.tables, other.family)
        other.run(operations.prune_keep_latest, st, key_of("t"), intent=Intent.SNAPSHOT_WRITE)
    finally:
        other.close()
    latest = saver.get_tuple(config("t"))  # as LangGraph does before each run
    assert latest is not None
    again = put_list(saver, latest.config, b.main_lists[-1], "000099.again", run_id="run-again", step=99)
    assert messages_of(saver, again) == b.main_lists[-1]


# --- copying ---------------------------------------------------------------------------


def _renamed(found: dict[Key, Any], thread_id: str) -> dict[Key, Any]:
    return {(thread_id, ns, checkpoint_id): value for (_, ns, checkpoint_id), value in found.items()}


def test_a_copy_has_its_own_parts_and_reads_as_the_source(saver: SQLSaver) -> None:
    branchy(saver, "t")
    source = reads(saver, "t")
    saver.copy_thread("t", "c")
    for ns in ("", SUB):
        assert parts_of(saver, "c", ns) == parts_of(saver, "t", ns)
    assert reads(saver, "c") == _renamed(source, "c")
    assert_sound(saver)

    saver.delete_thread("t")
    assert reads(saver, "c") == _renamed(source, "c")
    assert_sound(saver)


async def test_deleting_a_copy_leaves_its_source_intact(asaver: SQLSaver) -> None:
    branchy(asaver, "t")
    source = reads(asaver, "t")
    await asaver.acopy_thread("t", "c")
    await asaver.adelete_thread("c")
    assert parts_of(asaver, "c") == {}
    assert reads(asaver, "t") == source
    assert_sound(asaver)


def test_pruning_a_copy_leaves_its_source_intact_and_the_copy_grows_on(saver: SQLSaver) -> None:
    b = branchy(saver, "t")
    source = reads(saver, "t")
    saver.copy_thread("t", "c")
    saver.prune(["c"], strategy="keep_latest")
    grown = [*b.main_lists[-1], *messages(3, tag="copy")]
    tip = {"configurable": {**b.fork[-1]["configurable"], "thread_id": "c"}}
    again = put_list(saver, tip, grown, "000099.copy", run_id="run-copy", step=99)
    assert messages_of(saver, again) == grown
    assert reads(saver, "t") == source
    assert_sound(saver)


# --- two writers at once ---------------------------------------------------------------

ROUNDS = 12
SHARED = 110
"""New elements both writers store in each round: more than two INSERTs' worth of rows
(`statements.ROWS_PER_INSERT`), and enough to fill pages. (With fewer rounds or
elements, PostgreSQL's deadlock between such puts, fixed in `put_plan`, showed too
rarely to be caught.)"""


def _element_digest(message: Any) -> bytes:
    return elements.digest_of(SERDE.dumps_typed([message])[1][1:])  # less the one-byte array header


def _own(writer: int, r: int, shared: set[bytes]) -> Any:
    """Writer 0's element of round `r`, whose digest sorts before every shared one,
    or writer 1's, which sorts after: their puts then cut their sorted parts into
    INSERTs of `ROWS_PER_INSERT` at different places, so that a digest's place in the
    order of a put must not depend on where its INSERT starts."""
    for k in itertools.count():
        (candidate,) = messages(1, start=k, tag=f"own{writer}-{r}")
        found = _element_digest(candidate)
        if (found < min(shared)) if writer == 0 else (found > max(shared)):
            return candidate
    raise AssertionError("unreachable")


@functools.cache
def _fork_lists(writer: int) -> list[list[Any]]:
    """What writer `writer` puts, round by round, on its fork of the shared trunk:
    the trunk's elements, the round's new shared ones, and one of its own."""
    lists = []
    for r in range(ROUNDS):
        shared = messages(SHARED, start=1000 * (r + 1), tag="shared")
        lists.append([*messages(8), *shared, _own(writer, r, {_element_digest(m) for m in shared})])
    return lists


def _write_fork(saver: SQLSaver, trunk: dict[str, Any], writer: int, barrier: Any) -> list[dict[str, Any]]:
    """Put one fork of `trunk`, waiting on `barrier` before each put so that both
    writers send the same new elements at the same moment (a failed writer breaks the
    barrier, so that the other one stops waiting)."""
    stored, parent = [], trunk
    try:
        for r, value in enumerate(_fork_lists(writer)):
            barrier.wait()
            parent = put_list(saver, parent, value, f"{r + 2:06}.w{writer}", run_id=f"run-{writer}", step=r + 2)
            stored.append(parent)
    except BaseException:
        barrier.abort()
        raise
    return stored


def _check_forks(saver: SQLSaver, forks: list[list[dict[str, Any]]]) -> None:
    """Each element stored once, nothing else stored, and both forks read back."""
    expected = digests_of(messages(8), *_fork_lists(0), *_fork_lists(1))
    pa = saver.tables.parts
    with saver.db.sync_engine.connect() as conn:
        digests = [
            bytes(d) for d in conn.execute(sa.select(pa.c.digest).where(pa.c.thread_key == key_of("t"))).scalars()
        ]
    assert sorted(digests) == sorted(expected)
    for writer, stored in enumerate(forks):
        assert [messages_of(saver, c) for c in stored] == _fork_lists(writer)
    assert_sound(saver)


def test_two_writers_storing_the_same_new_elements_at_once(saver: SQLSaver, db_url: str) -> None:
    trunk = put_list(saver, config("t"), messages(8), "000001.trunk", run_id="run-trunk", step=1)
    barrier = threading.Barrier(2, timeout=30)
    with (
        SQLSaver.from_conn_string(db_url) as one,
        SQLSaver.from_conn_string(db_url) as two,
        ThreadPoolExecutor(2) as pool,
    ):
        for s in (one, two):
            s.get_tuple(trunk)  # each knows the trunk's parts, as a resumed thread does
        futures = [pool.submit(_write_fork, s, trunk, i, barrier) for i, s in enumerate((one, two))]
        forks = [f.result(timeout=120) for f in futures]
    _check_forks(saver, forks)


def _write_fork_in_a_process(url: str, trunk: dict[str, Any], writer: int, barrier: Any, out: str) -> None:
    with SQLSaver.from_conn_string(url) as saver:
        saver.get_tuple(trunk)
        stored = _write_fork(saver, trunk, writer, barrier)
    Path(out).write_text(json.dumps(stored))


def test_two_processes_storing_the_same_new_elements_at_once(saver: SQLSaver, db_url: str, tmp_path: Path) -> None:
    trunk = put_list(saver, config("t"), messages(8), "000001.trunk", run_id="run-trunk", step=1)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2, timeout=60)
    outs = [str(tmp_path / f"writer-{i}.json") for i in range(2)]
    procs = [
        ctx.Process(target=_write_fork_in_a_process, args=(db_url, trunk, i, barrier, out))
        for i, out in enumerate(outs)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    _check_forks(saver, [json.loads(Path(out).read_text()) for out in outs])


class _RacingConnection:
    """A connection that runs `race` once its first `after` statements are done."""

    def __init__(self, conn: Any, after: int, race: Any) -> None:
        self.conn, self.after, self.race = conn, after, race

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = self.conn.execute(*args, **kwargs)
        self.after -= 1
        if self.after == 0:
            self.race()
        return result


class _Racer:
    """A put from another saver (another process, as far as the database can tell) of
    a new conversation whose elements are not stored yet, so that it waits on no row
    of the operation it races, unless the operation's locks hold it back."""

    fresh = messages(4, tag="racing")

    def __init__(self, writer: SQLSaver, thread_id: str) -> None:
        self.writer, self.thread_id = writer, thread_id
        self.stored: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._put)

    def _put(self) -> None:
        cp = checkpoint({"messages": self.fresh}, {"messages": "000001.racing"})
        self.stored = self.writer.put(
            config(self.thread_id), cp, {"run_id": "run-racing"}, {"messages": cp["channel_versions"]["messages"]}
        )

    def start(self) -> None:
        self.thread.start()
        self.thread.join(0.5)  # committed by now, unless the operation's locks hold it until it commits

    def done(self) -> dict[str, Any]:
        self.thread.join(30)
        assert self.stored is not None, "the racing put failed"
        return self.stored


def _race(monkeypatch: pytest.MonkeyPatch, operation: str, after: int, racer: _Racer) -> None:
    """Make `operations.<operation>` start `racer` after its first `after` statements."""
    real = getattr(operations, operation)
    monkeypatch.setattr(
        operations, operation, lambda conn, *args: real(_RacingConnection(conn, after, racer.start), *args)
    )


def test_a_put_committed_while_its_thread_is_deleted_survives_whole_or_goes_whole(
    engine_name: str, saver: SQLSaver, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new conversation started on a thread while `delete_thread` deletes it, its
    put committing between the delete's statements: the new checkpoint either goes
    with the thread or stays with every blob and part it needs, never half."""
    if engine_name == "sqlite":
        pytest.skip("SQLite has one writer at a time: the put waits for the whole delete")
    branchy(saver, "t")
    with SQLSaver.from_conn_string(db_url) as writer:
        racer = _Racer(writer, "t")
        _race(monkeypatch, "delete_threads", 1, racer)
        saver.delete_thread("t")
        stored = racer.done()
    left = reads(saver, "t")
    assert sorted(left) in ([], [key(stored)])
    if left:
        assert messages_of(saver, stored) == _Racer.fresh
    assert set(parts_of(saver, "t")) == (digests_of(_Racer.fresh) if left else set())
    assert_sound(saver)


def test_a_put_committed_on_the_source_while_it_is_copied_is_copied_whole_or_not_at_all(
    engine_name: str, saver: SQLSaver, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine_name == "sqlite":
        pytest.skip("SQLite has one writer at a time: the put waits for the whole copy")
    branchy(saver, "t")
    before = reads(saver, "t")
    with SQLSaver.from_conn_string(db_url) as writer:
        racer = _Racer(writer, "t")
        _race(monkeypatch, "copy_thread", 3, racer)  # after its two checks and its first copy
        saver.copy_thread("t", "c")
        stored = racer.done()
    assert messages_of(saver, stored) == _Racer.fresh
    copied = reads(saver, "c")
    racing = (("c", *key(stored)[1:]),)
    assert sorted(copied) in (sorted(_renamed(before, "c")), sorted([*_renamed(before, "c"), *racing]))
    assert_sound(saver)


# --- the 0004 migration ----------------------------------------------------------------


def _alembic(saver: SQLSaver, move: Any, revision: str) -> None:
    """`command.upgrade` or `command.downgrade` of the saver's tables to `revision`."""
    target = saver.tables.migrations
    with saver.db.sync_engine.begin() as conn:
        cfg = target.config()
        cfg.attributes.update(connection=conn, target=target)
        move(cfg, revision)


def _schema(saver: SQLSaver) -> tuple[bool, bool]:
    """Whether the blobs have a ``manifest`` column, and whether the parts table exists."""
    inspector = sa.inspect(saver.db.sync_engine)
    columns = {c["name"] for c in inspector.get_columns(saver.tables.blobs.name)}
    return "manifest" in columns, inspector.has_table(saver.tables.parts.name)


def _manifest_count(saver: SQLSaver) -> int:
    bl = saver.tables.blobs
    with saver.db.sync_engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(bl.c.manifest.is_not(None))).scalar_one())


def test_rows_written_before_0004_read_back_unchanged_and_new_puts_split(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SQLSaver(db_url) as saver:
        saver.setup()
        with monkeypatch.context() as m:  # rows as the code before 0004 wrote them: every value whole
            m.setattr(elements, "SPLIT_TYPE", "nothing is split")
            b = branchy(saver, "t")
        old = reads(saver)
        assert _manifest_count(saver) == 0
        _alembic(saver, command.downgrade, "0003")
        assert _schema(saver) == (False, False)

    shown = run(capsys, "migrate", "--show", "--url", db_url, "--json").json
    assert (shown["current"], [p["revision"] for p in shown["pending"]]) == ("0003", ["0004"])
    assert run(capsys, "migrate", "--url", db_url, "--json").json == {
        "before": "0003",
        "after": "0004",
        "changed": True,
    }

    with SQLSaver(db_url) as saver:
        assert _schema(saver) == (True, True)
        assert reads(saver) == old
        grown = [*b.fork_lists[-1], *messages(2, tag="new")]
        new = put_list(saver, b.fork[-1], grown, "000099.new", run_id="run-new", step=99)
        assert messages_of(saver, new) == grown
        assert _manifest_count(saver) == 1 and set(parts_of(saver, "t")) == digests_of(grown)
        assert {k: v for k, v in reads(saver).items() if k in old} == old
        assert_sound(saver)
        saver.prune(["t"], strategy="keep_latest")  # the old whole rows go, the new split one stays
        assert messages_of(saver, new) == grown
        assert_sound(saver)


def test_downgrading_0004_keeps_split_lists_whole(db_url: str) -> None:
    with SQLSaver(db_url) as saver:
        saver.setup()
        branchy(saver, "t")
        before = reads(saver)
        assert _manifest_count(saver) > 0
        _alembic(saver, command.downgrade, "0003")
        assert _schema(saver) == (False, False)
        saver.setup()
        assert _manifest_count(saver) == 0
        assert reads(saver) == before


def test_a_downgrade_that_cannot_join_a_list_changes_nothing(db_url: str) -> None:
    with SQLSaver(db_url) as saver:
        saver.setup()
        b = branchy(saver, "t")
        pa = saver.tables.parts
        with saver.db.sync_engine.begin() as conn:
            conn.execute(sa.delete(pa).where(pa.c.digest == min(digests_of(*b.fork_lists) - digests_of(*b.main_lists))))
        with pytest.raises(MissingPartsError, match="cannot downgrade below 0004"):
            _alembic(saver, command.downgrade, "0003")
        assert _schema(saver) == (True, True)
        with saver.db.sync_engine.connect() as conn:
            assert migrate.current(conn, saver.tables.migrations) == "0004"
        assert messages_of(saver, b.main[-1]) == b.main_lists[-1]


@pytest.mark.parametrize("done", ["column", "column and table"])
def test_setup_completes_a_0004_a_killed_process_left_half_done(engine_name: str, db_url: str, done: str) -> None:
    """MySQL's DDL is not transactional: a process killed inside 0004 leaves what it
    had done, with the version still at 0003, and the next setup() must pass over it.
    (On SQLite the revision is one transaction, so no such state exists.)"""
    if engine_name == "sqlite":
        pytest.skip("SQLite's DDL is transactional: a killed 0004 leaves nothing behind")
    with SQLSaver(db_url) as saver:
        _alembic(saver, command.upgrade, "0003")
        engine = saver.db.sync_engine
        payload = payload_type().compile(dialect=engine.dialect)
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {saver.tables.blobs.name} ADD COLUMN manifest {payload}"))
            if done == "column and table":
                saver.tables.parts.create(conn)
            assert migrate.current(conn, saver.tables.migrations) == "0003"
        saver.setup()
        with engine.connect() as conn:
            assert migrate.current(conn, saver.tables.migrations) == migrate.head(saver.tables.migrations)
            context = MigrationContext.configure(conn, opts={"version_table": saver.tables.migrations.version_table})
            assert compare_metadata(context, saver.tables.metadata) == []
        b = branchy(saver, "t")
        assert messages_of(saver, b.main[-1]) == b.main_lists[-1]
        assert_sound(saver)
