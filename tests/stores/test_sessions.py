"""`SessionStore` on every engine: sessions, scoped state, ordered events under
concurrent writers, turns, usage, summaries, transcripts, retention and read-only mode."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import (
    ReadOnlyError,
    SessionConflictError,
    SessionEvent,
    SessionExistsError,
    SessionNotFoundError,
    SessionStore,
)
from checkpoint_sql.errors import EngineUnreachableError
from tests.store_helpers import Clock, snapshot

IDS = {"app_name": "app", "user_id": "ann", "session_id": "s1"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(db_url: str, clock: Clock) -> Iterator[SessionStore]:
    with SessionStore.from_conn_string(db_url, clock=clock) as s:
        s.setup()
        yield s


def test_create_get_list_and_delete_sessions(sessions: SessionStore) -> None:
    created = sessions.create_session(app_name="app", user_id="ann", session_id="s1", state={"topic": "tea"})
    assert (created.id, created.state, created.events, created.last_seq) == ("s1", {"topic": "tea"}, [], 0)
    with pytest.raises(SessionExistsError, match=r"'s1'.*already exists"):
        sessions.create_session(app_name="app", user_id="ann", session_id="s1")
    other = sessions.create_session(app_name="app", user_id="bob")
    sessions.create_session(app_name="other-app", user_id="ann", session_id="s1")
    assert len(other.id) == 32
    got = sessions.get_session(**IDS)
    assert got is not None and got.state == {"topic": "tea"} and got.created_at == created.created_at
    assert sessions.get_session(app_name="app", user_id="ann", session_id="nope") is None
    assert [s.id for s in sessions.list_sessions(app_name="app", user_id="ann")] == ["s1"]
    assert {s.user_id for s in sessions.list_sessions(app_name="app")} == {"ann", "bob"}
    sessions.append_event(got, SessionEvent(author="user", content="hi"))
    assert sessions.delete_session(**IDS) is True
    assert sessions.delete_session(**IDS) is False
    assert sessions.get_session(**IDS) is None
    with sessions.db.sync_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions.tables.events)).scalar_one() == 0
    assert sessions.get_session(app_name="other-app", user_id="ann", session_id="s1") is not None


def test_state_scopes_route_by_prefix_and_temp_keys_are_never_stored(sessions: SessionStore) -> None:
    first = sessions.create_session(
        **IDS, state={"mood": "calm", "app:theme": "dark", "user:name": "Ann", "temp:scratch": 1}
    )
    assert first.state == {"mood": "calm", "app:theme": "dark", "user:name": "Ann"}
    stored = sessions.append_event(
        first,
        SessionEvent(author="agent", state_delta={"step": 1, "user:lang": "fr", "app:version": 2, "temp:x": "y"}),
    )
    assert stored.state_delta == {"step": 1, "user:lang": "fr", "app:version": 2}
    assert first.state == {
        "mood": "calm",
        "step": 1,
        "app:theme": "dark",
        "app:version": 2,
        "user:name": "Ann",
        "user:lang": "fr",
    }
    same_user = sessions.create_session(app_name="app", user_id="ann", session_id="s2")
    other_user = sessions.create_session(app_name="app", user_id="bob", session_id="s3")
    other_app = sessions.create_session(app_name="app2", user_id="ann", session_id="s4")
    assert same_user.state == {"app:theme": "dark", "app:version": 2, "user:name": "Ann", "user:lang": "fr"}
    assert other_user.state == {"app:theme": "dark", "app:version": 2}
    assert other_app.state == {}
    assert "temp" not in repr(snapshot(sessions))


def test_a_stale_writer_gets_a_conflict_and_stores_nothing(sessions: SessionStore) -> None:
    mine = sessions.create_session(**IDS)
    theirs = sessions.get_session(**IDS)
    assert theirs is not None
    sessions.append_event(mine, SessionEvent(author="me", content=1, state_delta={"who": "me"}))
    before = snapshot(sessions)
    with pytest.raises(SessionConflictError, match="knew event 0, the store is at 1") as raised:
        sessions.append_event(theirs, SessionEvent(author="them", content=2, state_delta={"who": "them"}))
    assert (raised.value.expected_seq, raised.value.actual_seq) == (0, 1)
    assert snapshot(sessions) == before and theirs.events == [] and theirs.last_seq == 0
    sessions.delete_session(**IDS)
    with pytest.raises(SessionNotFoundError, match="does not exist"):
        sessions.append_event(mine, SessionEvent(author="me"))


def _append_with_retries(store: SessionStore, author: str, count: int, start: threading.Barrier) -> int:
    """Append `count` events, re-reading the session after each conflict; the conflicts."""
    conflicts = 0
    session = store.get_session(**IDS)
    start.wait()
    for n in range(count):
        while True:
            assert session is not None
            try:
                store.append_event(session, SessionEvent(author=author, content=n, turn_id=f"{author}-{n}"))
                break
            except SessionConflictError:
                conflicts += 1
                session = store.get_session(**IDS)
    return conflicts


def _check_log(store: SessionStore, writers: list[str], count: int) -> None:
    session = store.get_session(**IDS)
    assert session is not None
    assert (
        [e.seq for e in session.events]
        == list(range(1, len(writers) * count + 1))
        == list(range(1, session.last_seq + 1))
    )
    for writer in writers:
        assert [e.content for e in session.events if e.author == writer] == list(range(count))


def test_two_threads_appending_to_one_session_lose_and_reorder_nothing(db_url: str, sessions: SessionStore) -> None:
    sessions.create_session(**IDS)
    start = threading.Barrier(2)
    conflicts: list[int] = []

    def writer(name: str) -> None:
        with SessionStore.from_conn_string(db_url) as own:  # its own pool, as another process would have
            conflicts.append(_append_with_retries(own, name, 15, start))

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(conflicts) == 2
    _check_log(sessions, ["a", "b"], 15)


async def test_two_async_tasks_appending_to_one_session_lose_and_reorder_nothing(sessions: SessionStore) -> None:
    await sessions.acreate_session(**IDS)
    fresh = await sessions.aget_session(**IDS)
    stale = await sessions.aget_session(**IDS)
    assert fresh is not None and stale is not None
    await sessions.aappend_event(fresh, SessionEvent(author="a", content=0))
    with pytest.raises(SessionConflictError):
        await sessions.aappend_event(stale, SessionEvent(author="b", content=0))

    async def writer(name: str, first: int) -> None:
        for n in range(first, 12):
            while True:
                session = await sessions.aget_session(**IDS)
                assert session is not None
                await asyncio.sleep(0)  # let the other task read the same version
                try:
                    await sessions.aappend_event(session, SessionEvent(author=name, content=n))
                    break
                except SessionConflictError:
                    continue

    await asyncio.gather(writer("a", 1), writer("b", 0))
    _check_log(sessions, ["a", "b"], 12)


def test_event_limit_keeps_the_newest_events(db_url: str) -> None:
    with SessionStore.from_conn_string(db_url, event_limit=3) as store:
        store.setup()
        session = store.create_session(**IDS)
        for n in range(5):
            stored = store.append_event(session, SessionEvent(author="u", content=n))
        got = store.get_session(**IDS)
    assert stored.seq == 5 and [e.content for e in session.events] == [2, 3, 4]
    assert got is not None and [e.seq for e in got.events] == [3, 4, 5] and got.last_seq == 5


def test_events_by_turn_type_time_and_sequence(sessions: SessionStore, clock: Clock) -> None:
    session = sessions.create_session(**IDS)
    script = [("user", "message", "t1", "hi"), ("agent", "tool_call", "t1", {"tool": "x"})]
    script += [("agent", "message", "t1", "done"), ("user", "message", "t2", "again"), ("system", "note", None, "n")]
    stamps = []
    for author, kind, turn, content in script:
        clock.advance(seconds=10)
        stamps.append(sessions.append_event(session, SessionEvent(author, content, kind, turn)).timestamp)
    turns = sessions.history(**IDS)
    assert [(t.turn_id, [e.seq for e in t.events]) for t in turns] == [("t1", [1, 2, 3]), ("t2", [4]), (None, [5])]
    assert [e.seq for e in sessions.query_events(**IDS, types=["tool_call", "note"])] == [2, 5]
    assert [e.seq for e in sessions.query_events(**IDS, turn_id="t1", limit=2)] == [1, 2]
    assert [e.seq for e in sessions.query_events(**IDS, since=stamps[1], until=stamps[3])] == [2, 3]
    assert [e.seq for e in sessions.query_events(**IDS, after_seq=3)] == [4, 5]
    assert [e.seq for e in sessions.history(**IDS, types=["message"])[0].events] == [1, 3]
    last_two = sessions.get_session(**IDS, last_n=2)
    after = sessions.get_session(**IDS, after=stamps[2])
    assert last_two is not None and [e.seq for e in last_two.events] == [4, 5]
    assert after is not None and [e.seq for e in after.events] == [3, 4, 5]
    with pytest.raises(SessionNotFoundError):
        sessions.query_events(app_name="app", user_id="ann", session_id="missing")


def test_usage_merges_per_turn_and_summaries_are_kept_per_filter_key(sessions: SessionStore) -> None:
    sessions.create_session(**IDS)
    sessions.record_usage(**IDS, turn_id="t1", input_tokens=100, output_tokens=20, model="m-1")
    sessions.record_usage(**IDS, turn_id="t2", input_tokens=5)
    merged = sessions.record_usage(**IDS, turn_id="t1", input_tokens=50, output_tokens=5)
    assert (merged.input_tokens, merged.output_tokens, merged.total_tokens, merged.records, merged.model) == (
        150,
        25,
        175,
        2,
        "m-1",
    )
    assert [(u.turn_id, u.input_tokens) for u in sessions.usage(**IDS)] == [("t1", 150), ("t2", 5)]
    sessions.put_summary(**IDS, summary="first take")
    sessions.put_summary(**IDS, summary="all about tea", topics=["tea"])
    sessions.put_summary(**IDS, summary="tools only", filter_key="tools")
    whole = sessions.get_summary(**IDS)
    assert whole is not None and (whole.summary, whole.topics) == ("all about tea", ["tea"])
    tools = sessions.get_summary(**IDS, filter_key="tools")
    assert tools is not None and tools.summary == "tools only"
    assert sessions.get_summary(**IDS, filter_key="other") is None
    with pytest.raises(SessionNotFoundError):
        sessions.record_usage(app_name="app", user_id="ann", session_id="missing", turn_id="t")


def test_markdown_export_shows_turns_events_usage_and_summaries(sessions: SessionStore) -> None:
    session = sessions.create_session(**IDS)
    sessions.append_event(session, SessionEvent("user", "What is **2+2**?", turn_id="t1"))
    sessions.append_event(session, SessionEvent("calc", {"result": 4}, "tool_result", "t1", {"answered": True}))
    sessions.record_usage(**IDS, turn_id="t1", input_tokens=12, output_tokens=3, model="tiny")
    sessions.put_summary(**IDS, summary="Arithmetic.")
    text = sessions.export_markdown(**IDS)
    assert text.startswith("# Session s1\n")
    for part in ("## Summary\n\nArithmetic.", "## Turn t1", "_tokens (tiny): 12 in, 3 out_", "**user** · #1"):
        assert part in text
    assert '"result": 4' in text and "· tool_result · #2" in text and "_state changed: `answered`_" in text


def test_purge_older_than_removes_old_sessions_and_their_events(sessions: SessionStore, clock: Clock) -> None:
    old = sessions.create_session(**IDS)
    for n in range(3):
        sessions.append_event(old, SessionEvent("u", n))
    sessions.record_usage(**IDS, turn_id="t", input_tokens=1)
    clock.advance(days=2)
    cutoff = clock()
    young = sessions.create_session(app_name="app", user_id="ann", session_id="young")
    sessions.append_event(young, SessionEvent("u", "x"))
    result = sessions.purge_older_than(cutoff)
    assert (result.sessions, result.events) == (1, 3)
    assert [s.id for s in sessions.list_sessions(app_name="app")] == ["young"]
    assert sessions.purge_older_than(cutoff).sessions == 0


async def test_async_twins_cover_the_whole_api(sessions: SessionStore) -> None:
    session = await sessions.acreate_session(**IDS, state={"user:x": 1})
    await sessions.aappend_event(session, SessionEvent("u", "hi", turn_id="t"))
    await sessions.arecord_usage(**IDS, turn_id="t", output_tokens=2)
    await sessions.aput_summary(**IDS, summary="s")
    assert (await sessions.aget_summary(**IDS)) is not None
    assert [u.output_tokens for u in await sessions.ausage(**IDS)] == [2]
    assert [t.turn_id for t in await sessions.ahistory(**IDS)] == ["t"]
    assert len(await sessions.aquery_events(**IDS)) == 1
    assert "hi" in await sessions.aexport_markdown(**IDS)
    assert [s.state for s in await sessions.alist_sessions(app_name="app")] == [{"user:x": 1}]
    assert (await sessions.apurge_older_than(session.created_at)).sessions == 0
    assert await sessions.adelete_session(**IDS)


# --- read-only inspection ---------------------------------------------------------------------


def _writes(store: SessionStore, session: Any) -> list[Any]:
    return [
        lambda: store.setup(),
        lambda: store.create_session(app_name="app", user_id="ann"),
        lambda: store.append_event(session, SessionEvent("u", "no")),
        lambda: store.delete_session(**IDS),
        lambda: store.record_usage(**IDS, turn_id="t"),
        lambda: store.put_summary(**IDS, summary="no"),
        lambda: store.purge_older_than(session.updated_at),
    ]


def test_read_only_mode_reads_and_refuses_every_write(db_url: str, sessions: SessionStore) -> None:
    session = sessions.create_session(**IDS, state={"app:a": 1})
    sessions.append_event(session, SessionEvent("u", "hi", turn_id="t"))
    before = snapshot(sessions)
    with SessionStore.from_conn_string(db_url, read_only=True) as viewer:
        seen = viewer.get_session(**IDS)
        assert seen is not None and seen.state == {"app:a": 1} and len(seen.events) == 1
        assert "hi" in viewer.export_markdown(**IDS) and viewer.history(**IDS)[0].turn_id == "t"
        for write in _writes(viewer, seen):
            with pytest.raises(ReadOnlyError, match="read_only=True"):
                write()
    assert snapshot(sessions) == before


def test_read_only_sqlite_never_creates_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with SessionStore.from_conn_string(f"sqlite:///{missing}", read_only=True) as viewer:
        with pytest.raises(EngineUnreachableError, match="unable to open"):
            viewer.get_session(**IDS)
        with pytest.raises(ReadOnlyError):
            viewer.setup()
    assert not missing.exists()
