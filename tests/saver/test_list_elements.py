"""Lists stored element by element: what a growing conversation costs and what it
reads back.

A msgpack list is stored as its parts (`checkpoint_sql.saver.elements`): every message of a
conversation once per thread, whatever the number of checkpoints that hold it, and
read back as the very bytes the serializer wrote. Lists below the production
thresholds, values of other types and encrypted values keep the whole-blob form.
(Outside the tests marked ``list_thresholds`` every list is split, see conftest.)
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage, RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_sql import MissingPartsError, SQLSaver
from checkpoint_sql.core.ids import address_of, key_of
from checkpoint_sql.core.links import Link
from checkpoint_sql.saver import codec, elements
from tests.graphs import agent_graph
from tests.helpers import checkpoint, config, count, messages

SERDE = JsonPlusSerializer()


def _manifests(saver: SQLSaver, channel: str) -> list[bytes | None]:
    bl = saver.tables.blobs
    with saver.db.sync_engine.connect() as conn:
        return list(conn.execute(sa.select(bl.c.manifest).where(bl.c.channel == channel)).scalars())


def _put_versions(saver: SQLSaver, thread_id: str, lists: list[list[Any]]) -> list[dict[str, Any]]:
    """One checkpoint per list, each a new version of channel ``messages``."""
    parent, stored = config(thread_id), []
    for version, value in enumerate(lists, start=1):
        cp = checkpoint({"messages": value}, {"messages": version})
        parent = saver.put(parent, cp, {"step": version}, {"messages": version})
        stored.append(parent)
    return stored


def _read(saver: SQLSaver, stored: dict[str, Any]) -> Any:
    found = saver.get_tuple(stored)
    assert found is not None
    return found.checkpoint["channel_values"]["messages"]


# --- pure: cutting and joining --------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(_values, min_size=1, max_size=80))
def test_a_split_list_joins_back_to_the_very_bytes_the_serializer_wrote(value: list[Any]) -> None:
    type_, data = SERDE.dumps_typed(value)
    split = elements.split(type_, data)
    if split is not None:
        assert elements.join(split.header, split.manifest, split.parts) == data


def test_a_long_list_lists_full_pages_and_a_short_tail() -> None:
    type_, data = SERDE.dumps_typed(messages(2 * elements.PAGE + 5))
    split = elements.split(type_, data)
    assert split is not None
    assert len(elements.pages_of(split.manifest)) == 2
    assert len(elements.tail_of(split.manifest)) == 5
    assert len(split.manifest) == 4 + (2 + 5) * elements.DIGEST


def test_appending_keeps_the_pages_and_elements_of_the_shorter_list() -> None:
    short, long = messages(40), messages(41)
    a = elements.split(*SERDE.dumps_typed(short))
    b = elements.split(*SERDE.dumps_typed(long))
    assert a is not None and b is not None
    assert set(a.parts) <= set(b.parts)
    assert len(set(b.parts) - set(a.parts)) == 1


@pytest.mark.parametrize(
    ("grown", "extends"),
    [(messages(70), True), (messages(69), True), (messages(65)[1:], False), (messages(10), False)],
)
def test_cutting_after_the_previous_version_gives_the_same_cut(grown: list[Any], extends: bool) -> None:
    """A list that starts with the previous version's elements is cut from where that
    one ended, and its parts are the new ones only; any other list is cut from the
    start. Either way the cut is the list's own."""
    previous = elements.split(*SERDE.dumps_typed(messages(66)))
    alone = elements.split(*SERDE.dumps_typed(grown))
    after = elements.split(*SERDE.dumps_typed(grown), previous=previous)
    assert previous is not None and alone is not None and after is not None
    assert (after.header, after.manifest, after.body, after.ends) == (
        alone.header,
        alone.manifest,
        alone.body,
        alone.ends,
    )
    assert after.digests == alone.digests and after.pages == alone.pages
    new = {d: data for d, data in alone.parts.items() if d not in previous.parts}
    assert after.parts == (new if extends else alone.parts)


@pytest.mark.list_thresholds
def test_only_msgpack_lists_large_enough_are_split() -> None:
    assert elements.split(*SERDE.dumps_typed(messages(1))) is None  # under SPLIT_MIN_BYTES
    assert elements.split(*SERDE.dumps_typed(messages(30))) is None  # 10 kB: under SPLIT_MIN_BYTES
    assert elements.split(*SERDE.dumps_typed(messages(60))) is not None  # 21 kB
    assert elements.split(*SERDE.dumps_typed(list(range(20_000)))) is None  # elements too small to key
    assert elements.split(*SERDE.dumps_typed({"m": messages(60)})) is None  # a map, not a list
    assert elements.split("msgpack+aes", SERDE.dumps_typed(messages(60))[1]) is None
    assert elements.split("msgpack", b"\x91" + b"\xc1" * 20_000) is None  # not msgpack: stays whole


def test_the_part_cache_keeps_of_a_namespace_exactly_what_a_read_reaches() -> None:
    cache, namespace = elements.PartCache(), (b"t" * 16, b"n" * 16)
    old = elements.split("msgpack", SERDE.dumps_typed(messages(40))[1])
    new = elements.split("msgpack", SERDE.dumps_typed(messages(40, start=100))[1])
    assert old is not None and new is not None
    cache.learn(namespace, {**old.parts, **new.parts}, {"messages": new})
    both = set(old.parts) | set(new.parts)
    cache.validate(namespace, elements.Reached(both, {"messages"}), {})  # all of it reached: all kept
    assert cache.unknown(namespace, {**old.parts, **new.parts}) == {}
    assert cache.view(namespace).latest == {"messages": new}
    cache.validate(namespace, elements.Reached(set(new.parts), set()), {})  # the old list is no longer reached
    assert cache.unknown(namespace, {**old.parts, **new.parts}) == old.parts
    assert cache.view(namespace).latest == {}


# --- through the saver, on every engine -----------------------------------------------


def test_each_message_of_a_growing_list_is_stored_once(saver: SQLSaver) -> None:
    lists = [messages(n) for n in range(1, 41)]
    stored = _put_versions(saver, "t", lists)
    assert count(saver, "parts") == 40 + 1  # every message once, and one full page of digests
    assert all(m is not None for m in _manifests(saver, "messages"))
    for cfg, value in zip(stored, lists, strict=True):
        assert _read(saver, cfg) == value
    assert [t.checkpoint["channel_values"]["messages"] for t in saver.list(config("t"))] == lists[::-1]


def test_a_message_removed_from_the_middle_of_a_long_list_reads_back(saver: SQLSaver) -> None:
    full = messages(3 * elements.PAGE + 3)
    cut = full[:10] + full[11:]
    stored = _put_versions(saver, "t", [full, cut, [*cut, *messages(1, start=500)]])
    assert [_read(saver, c) for c in stored] == [full, cut, [*cut, *messages(1, start=500)]]


def test_a_real_agent_conversation_reads_back_as_on_the_in_memory_saver(saver: SQLSaver) -> None:
    ours, memory = agent_graph().compile(checkpointer=saver), agent_graph().compile(checkpointer=InMemorySaver())
    for graph in (ours, memory):
        cfg = config("chat")
        for turn in range(3):
            question = f"alpha bravo {turn} " + "filler " * 50
            graph.invoke({"messages": [HumanMessage(content=question, id=f"q{turn}")], "tool_calls": 0}, cfg)
        graph.update_state(cfg, {"messages": [RemoveMessage(id="q1")]})
    cfg = config("chat")
    assert ours.get_state(cfg).values == memory.get_state(cfg).values
    assert [s.values for s in ours.get_state_history(cfg)] == [s.values for s in memory.get_state_history(cfg)]
    assert any(m is not None for m in _manifests(saver, "messages"))


async def test_the_async_api_reads_and_writes_the_same_parts(asaver: SQLSaver) -> None:
    parent = config("t")
    lists = [messages(n) for n in (3, 5, 9)]
    for version, value in enumerate(lists, start=1):
        cp = checkpoint({"messages": value}, {"messages": version})
        parent = await asaver.aput(parent, cp, {}, {"messages": version})
    found = await asaver.aget_tuple(config("t"))
    assert found is not None and found.checkpoint["channel_values"]["messages"] == lists[-1]
    assert [t.checkpoint["channel_values"]["messages"] async for t in asaver.alist(config("t"))] == lists[::-1]


def test_a_saver_without_memory_of_the_thread_stores_no_part_twice(saver: SQLSaver, db_url: str) -> None:
    first = _put_versions(saver, "t", [messages(5)])
    with SQLSaver.from_conn_string(db_url) as other:  # another process resuming the thread
        cp = checkpoint({"messages": messages(8)}, {"messages": 2})
        stored = other.put(first[-1], cp, {}, {"messages": 2})
        assert _read(other, stored) == messages(8)
    assert count(saver, "parts") == 8


def test_a_saver_that_read_a_thread_sends_only_the_new_parts_of_its_next_put(saver: SQLSaver, db_url: str) -> None:
    _put_versions(saver, "t", [messages(5)])
    with SQLSaver.from_conn_string(db_url) as other:  # another process resuming the thread
        other.get_tuple(config("t"))  # as LangGraph does before a run
        cp = checkpoint({"messages": messages(8)}, {"messages": 2})
        address = address_of(config("t"), operation="put")
        namespace = (address.thread_key, key_of(""))
        prepared = codec.prepare_put(
            other.serde, address, cp, {}, {"messages": 2}, config("t"), other._parts.view(namespace)
        )
        assert len(other._parts.unknown(namespace, prepared.parts)) == 3


def test_parts_deleted_with_a_thread_are_stored_again_by_the_same_saver(saver: SQLSaver) -> None:
    _put_versions(saver, "t", [messages(6)])
    saver.delete_thread("t")
    assert count(saver, "parts") == 0
    stored = _put_versions(saver, "t", [messages(6)])  # the same bytes: the saver must not skip them
    assert _read(saver, stored[-1]) == messages(6)


class _PartReads:
    """The statements a saver runs on the parts table, and how many rows each returns."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, table: str) -> None:
        self.scans: list[int] = []
        self.lookups: list[int] = []
        run = Link._run

        def recording(link: Link, sql: str, params: Any, *, fetch: bool) -> list[tuple[Any, ...]]:
            rows = run(link, sql, params, fetch=fetch)
            if f"FROM {table}" in sql:
                (self.lookups if " IN (" in sql else self.scans).append(len(rows))
            return rows

        monkeypatch.setattr(Link, "_run", recording)


def test_a_long_list_read_by_another_saver_takes_its_parts_in_one_scan(
    saver: SQLSaver, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = [messages(150), messages(200)]
    stored = _put_versions(saver, "t", lists)
    reads = _PartReads(monkeypatch, saver.tables.parts.name)
    with SQLSaver.from_conn_string(db_url) as other:  # a process that did not write the thread
        assert _read(other, stored[-1]) == lists[-1]
        assert [t.checkpoint["channel_values"]["messages"] for t in other.list(config("t"))] == lists[::-1]
    assert reads.scans == [count(saver, "parts")]  # every part, once; the list took them from memory
    assert reads.lookups == []


def test_a_scan_stops_at_twice_what_a_read_needs_and_the_rest_is_looked_up_by_key(
    saver: SQLSaver, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A namespace can hold far more parts than its latest list reaches (a list that
    was trimmed keeps its old elements for the older checkpoints)."""
    lists = [messages(400), messages(70, start=1000)]
    stored = _put_versions(saver, "t", lists)
    reads = _PartReads(monkeypatch, saver.tables.parts.name)
    with SQLSaver.from_conn_string(db_url) as other:
        assert _read(other, stored[-1]) == lists[-1]
    needed = 2 * (elements.PAGE + 1) + 70 % elements.PAGE  # two pages and their elements, and the tail
    assert reads.scans == [2 * needed] and count(saver, "parts") > 2 * needed
    assert reads.lookups  # what the scan did not bring


def test_a_checkpoint_whose_parts_were_deleted_behind_the_savers_back_is_an_error(saver: SQLSaver, db_url: str) -> None:
    stored = _put_versions(saver, "t", [messages(4)])
    with saver.db.sync_engine.begin() as conn:
        conn.execute(sa.delete(saver.tables.parts))
    assert _read(saver, stored[-1]) == messages(4)  # parts are immutable: the writer's cache still holds them
    with SQLSaver.from_conn_string(db_url) as other, pytest.raises(MissingPartsError, match="missing"):
        other.get_tuple(stored[-1])


def test_encrypted_lists_stay_whole(db_url: str) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 16)
    with SQLSaver.from_conn_string(db_url, serde=serde) as saver:
        saver.setup()
        stored = _put_versions(saver, "t", [messages(6)])
        assert _read(saver, stored[-1]) == messages(6)
        assert _manifests(saver, "messages") == [None]
        assert count(saver, "parts") == 0


@pytest.mark.list_thresholds
def test_small_lists_and_other_values_keep_the_whole_blob_form(saver: SQLSaver) -> None:
    values = {"short": messages(30), "numbers": list(range(5000)), "doc": {"text": "x" * 20_000}, "big": messages(60)}
    cp = checkpoint(values)
    stored = saver.put(config("t"), cp, {}, {k: 1 for k in values})
    found = saver.get_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"] == values
    assert {c: m is not None for c in values for m in _manifests(saver, c)} == {
        "short": False,
        "numbers": False,
        "doc": False,
        "big": True,
    }
