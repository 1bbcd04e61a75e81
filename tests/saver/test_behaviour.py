"""What the saver promises beyond LangGraph's conformance suite: storage sharing,
write rules, paging, filters answered in SQL, atomic `put_full`, clean deletion,
and a delta-channel history identical to LangGraph's reference walk."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

from checkpoint_sql import SchemaNotReadyError, SerializationError, SQLSaver
from checkpoint_sql.saver import sql_saver as saver_module
from tests.helpers import checkpoint, config, count, put_chain, snapshot


def test_an_unchanged_channel_shares_the_blob_written_when_it_last_changed(saver: SQLSaver) -> None:
    big = "x" * 200_000
    first = saver.put(config("t"), checkpoint({"big": big, "n": 0}, {"big": 1, "n": 1}), {}, {"big": 1, "n": 1})
    parent = first
    for n in range(1, 6):
        parent = saver.put(parent, checkpoint({"big": big, "n": n}, {"big": 1, "n": n + 1}), {}, {"n": n + 1})
    assert count(saver, "blobs") == 2 + 5, "one blob per (channel, version): 'big' stored once, 'n' six times"
    assert saver.get_tuple(parent).checkpoint["channel_values"] == {"big": big, "n": 5}
    assert saver.get_tuple(first).checkpoint["channel_values"] == {"big": big, "n": 0}


def test_a_channel_versioned_without_a_value_is_stored_empty_and_not_loaded(saver: SQLSaver) -> None:
    stored = saver.put(config("t"), checkpoint({"a": 1}, {"a": 1, "gone": 1}), {}, {"a": 1, "gone": 1})
    assert saver.get_tuple(stored).checkpoint["channel_values"] == {"a": 1}


def test_putting_the_same_checkpoint_id_again_overwrites_it(saver: SQLSaver) -> None:
    cp = checkpoint({"a": 1})
    saver.put(config("t"), cp, {"source": "loop", "step": 1}, {"a": 1})
    saver.put(config("t"), cp, {"source": "update", "step": 1}, {"a": 1})
    assert [t.metadata["source"] for t in saver.list(config("t"))] == ["update"]


def test_ordinary_writes_keep_the_first_attempt_special_ones_the_last(saver: SQLSaver) -> None:
    stored = saver.put(config("t"), checkpoint(), {}, {})
    saver.put_writes(stored, [("out", "first"), ("log", 1)], "task-1")
    saver.put_writes(stored, [("out", "retry"), ("log", 2)], "task-1")
    saver.put_writes(stored, [(ERROR, "boom 1")], "task-2")
    saver.put_writes(stored, [(ERROR, "boom 2")], "task-2")
    saver.put_writes(stored, [(INTERRUPT, "ask")], "task-3")
    writes = saver.get_tuple(stored).pending_writes
    assert ("task-1", "out", "first") in writes and ("task-1", "log", 1) in writes
    assert ("task-2", ERROR, "boom 2") in writes
    assert len(writes) == 4


def test_pending_writes_come_back_in_task_path_task_id_idx_order(saver: SQLSaver) -> None:
    stored = saver.put(config("t"), checkpoint(), {}, {})
    saver.put_writes(stored, [("c", "b2"), ("c", "b3")], "task-b", task_path="~__pregel_pull, b")
    saver.put_writes(stored, [("c", "a1")], "task-z", task_path="~__pregel_pull, a")
    saver.put_writes(stored, [("c", "input")], "00000000-0000-0000-0000-000000000000")
    assert [w[2] for w in saver.get_tuple(stored).pending_writes] == ["input", "a1", "b2", "b3"]


def test_writes_may_arrive_before_their_checkpoint(saver: SQLSaver) -> None:
    cp = checkpoint({"a": 1})
    saver.put_writes(config("t", cp["id"]), [("a", 2)], "task-1")
    saver.put(config("t"), cp, {}, {"a": 1})
    assert saver.get_tuple(config("t")).pending_writes == [("task-1", "a", 2)]


def test_put_full_stores_checkpoint_and_writes_together(saver: SQLSaver) -> None:
    cp = checkpoint({"a": 1})
    writes = [("task-1", "a", 2), ("task-1", "b", 3, ""), ("task-2", INTERRUPT, "ask?", "~path")]
    stored = saver.put_full(config("t"), cp, {"step": 0}, {"a": 1}, writes)
    tup = saver.get_tuple(stored)
    assert tup.checkpoint["channel_values"] == {"a": 1}
    assert sorted(tup.pending_writes) == sorted([("task-1", "a", 2), ("task-1", "b", 3), ("task-2", INTERRUPT, "ask?")])


async def test_put_full_is_one_transaction_a_failure_stores_nothing(asaver: SQLSaver) -> None:
    with asaver.db.sync_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {asaver.tables.writes.name}"))  # the writes insert will fail
    with pytest.raises(SchemaNotReadyError, match="call setup"):
        await asaver.aput_full(config("t"), checkpoint({"a": 1}), {}, {"a": 1}, [("task", "a", 2)])
    assert count(asaver, "checkpoints") == 0
    assert count(asaver, "blobs") == 0


def test_list_pages_through_long_histories_without_gaps_or_repeats(
    saver: SQLSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saver_module, "LIST_PAGE", 3)
    chain = put_chain(saver, "t", 10)
    saver.copy_thread("t", "copy")  # same checkpoint ids in a second thread
    ids = [c["configurable"]["checkpoint_id"] for c in reversed(chain)]

    assert [t.checkpoint["id"] for t in saver.list(config("t"))] == ids
    assert [t.checkpoint["id"] for t in saver.list(config("t"), limit=7)] == ids[:7]
    assert [t.checkpoint["id"] for t in saver.list(config("t"), before=chain[5])] == ids[5:]
    everything = [(t.config["configurable"]["thread_id"], t.checkpoint["id"]) for t in saver.list(None)]
    assert len(everything) == len(set(everything)) == 20
    assert [cid for _, cid in everything] == sorted((cid for _, cid in everything), reverse=True)


def test_list_without_a_namespace_spans_them_all_and_with_one_stays_in_it(saver: SQLSaver) -> None:
    put_chain(saver, "t", 2)
    put_chain(saver, "t", 3, ns="child:1")
    assert len(list(saver.list({"configurable": {"thread_id": "t"}}))) == 5
    assert len(list(saver.list(config("t", ns="child:1")))) == 3
    assert len(list(saver.list(config("t")))) == 2


@pytest.mark.parametrize(
    ("filter", "matches"),
    [
        ({"source": "input"}, ["a"]),
        ({"step": 1}, ["b"]),
        ({"step": "1"}, []),
        ({"ok": True}, ["a"]),
        ({"ok": False}, ["b"]),
        ({"score": 0.5}, ["a"]),
        ({"missing": None}, ["a", "b"]),
        ({"nested": {"x": [1, 2], "y": "z"}}, ["b"]),
        ({"user's key": "it's"}, ["a"]),
        ({"source": "input' OR '1'='1"}, []),
        ({"source": "INPUT"}, []),
    ],
)
def test_metadata_filters_are_typed_equality_answered_in_sql(saver: SQLSaver, filter: dict, matches: list[str]) -> None:
    saver.put(
        config("a"), checkpoint(), {"source": "input", "step": -1, "ok": True, "score": 0.5, "user's key": "it's"}, {}
    )
    saver.put(
        config("b"), checkpoint(), {"source": "loop", "step": 1, "ok": False, "nested": {"y": "z", "x": [1, 2]}}, {}
    )
    assert sorted(t.config["configurable"]["thread_id"] for t in saver.list(None, filter=filter)) == matches


def test_delete_for_runs_leaves_no_orphan_blob_or_write(saver: SQLSaver) -> None:
    doomed = put_chain(saver, "t", 3, metadata={"run_id": "run-1"})
    kept = put_chain(saver, "t2", 2, metadata={"run_id": "run-2"})
    saver.put_writes(doomed[-1], [("a", 1)], "task")
    saver.delete_for_runs(["run-1"])
    assert [t.metadata["run_id"] for t in saver.list(None)] == ["run-2", "run-2"]
    assert count(saver, "writes") == 0
    assert count(saver, "blobs") == 2, "only the blobs the run-2 checkpoints point at"
    assert saver.get_tuple(kept[-1]).checkpoint["channel_values"] == {"step": 1}


def test_deleting_a_run_orphans_its_children_rather_than_leaving_dangling_parents(saver: SQLSaver) -> None:
    first = put_chain(saver, "t", 1, metadata={"run_id": "run-1"})
    second = saver.put(first[0], checkpoint({"step": 9}, {"step": 1}), {"run_id": "run-2"}, {})
    saver.delete_for_runs(["run-1"])
    child = saver.get_tuple(second)
    assert child.parent_config is None
    assert child.checkpoint["channel_values"] == {"step": 0}, "the blob it shares with its deleted parent stays"


def test_prune_keep_latest_frees_every_unreferenced_blob_and_write(saver: SQLSaver) -> None:
    chain = put_chain(saver, "t", 5)
    for stored in chain:
        saver.put_writes(stored, [("w", 1)], "task")
    saver.prune(["t"])
    latest = saver.get_tuple(config("t"))
    assert latest.config == chain[-1] and latest.parent_config is None
    assert latest.pending_writes == [("task", "w", 1)]
    assert (count(saver, "checkpoints"), count(saver, "blobs"), count(saver, "writes")) == (1, 1, 1)


def test_delta_channel_history_equals_langgraphs_reference_walk_across_forks(saver: SQLSaver) -> None:
    """The SQL answer must equal BaseCheckpointSaver's default walk over get_tuple."""
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    parent = config("t")
    configs = []
    for step in range(12):
        values = {"log": _DeltaSnapshot([f"s{step}"])} if step % 5 == 0 else {}
        versions = {"log": step + 1, "other": 1}
        stored = saver.put(parent, checkpoint(values, versions), {"step": step}, {"log": step + 1, "other": 1})
        saver.put_writes(stored, [("log", [f"w{step}"]), ("other", step)], f"task-{step}", task_path=f"p{step % 3}")
        saver.put_writes(stored, [("log", [f"v{step}"])], f"task-b-{step}")
        configs.append(stored)
        parent = stored if step != 8 else configs[6]  # fork: steps 9.. descend from step 6
    for target in configs:
        for channels in (["log"], ["log", "other"], ["absent"]):
            ours = saver.get_delta_channel_history(config=target, channels=channels)
            reference = BaseCheckpointSaver.get_delta_channel_history(saver, config=target, channels=channels)
            assert ours == reference, (target, channels)
    assert saver.get_delta_channel_history(config=config("t"), channels=[]) == {}
    assert saver.get_delta_channel_history(config=config("nobody"), channels=["log"]) == {"log": {"writes": []}}


def test_versions_are_langgraphs_string_versions(saver: SQLSaver) -> None:
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert v1.split(".")[0] == "0" * 31 + "1" and v2.split(".")[0] == "0" * 31 + "2"
    assert v1 < v2 and len(v1) <= 64
    assert saver.get_next_version(7, None).startswith("0" * 30 + "08.")


def test_threads_given_as_ints_are_stored_as_their_text(saver: SQLSaver) -> None:
    saver.put(config(42), checkpoint({"a": 1}), {}, {"a": 1})
    assert saver.get_tuple(config("42")).checkpoint["channel_values"] == {"a": 1}
    saver.delete_thread(42)
    assert saver.get_tuple(config("42")) is None


def test_nul_characters_in_metadata_are_refused_at_any_depth_not_stripped(saver: SQLSaver) -> None:
    """PostgreSQL's JSONB cannot hold NUL. Stripping it (as LangGraph does for top-level
    strings) would store something else than was put, so it is refused, on every engine
    alike, naming where it is."""
    before = snapshot(saver)
    for metadata, where in (
        ({"note": "a\x00b"}, "metadata['note']"),
        ({"nested": {"k\x00": ["c"]}}, "key of metadata['nested']"),
        ({"nested": {"k": ["c\x00d"]}}, "metadata['nested']['k'][0]"),
    ):
        with pytest.raises(SerializationError, match=re.escape(where)):
            saver.put(config("t"), checkpoint(), metadata, {})
    assert snapshot(saver) == before
