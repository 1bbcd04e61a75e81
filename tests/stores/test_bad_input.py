"""Bad input to the companion stores gets a typed error that says what is wrong, and the
database is unchanged: each case runs against stores already holding data and compares
every row of every companion table before and after the rejected call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from checkpoint_sql import (
    CheckpointSQLError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidNamespaceError,
    MemoryNotFoundError,
    SerializationError,
    SessionEvent,
    SessionExistsError,
    SQLStore,
    Storage,
    connect,
)
from tests.store_helpers import INDEX, snapshot

IDS = {"app_name": "app", "user_id": "ann", "session_id": "s1"}
Case = tuple[str, Callable[[Storage], Any], type[Exception], str]

CASES: list[Case] = [
    # --- SQLStore: namespaces (LangGraph's rules, with this package's error type)
    ("empty namespace", lambda d: d.store.put((), "k", {"v": 1}), InvalidNamespaceError, "must not be empty"),
    ("period in a label", lambda d: d.store.put(("a.b",), "k", {"v": 1}), InvalidNamespaceError, "period"),
    (
        "period via batch",
        lambda d: d.store.batch([PutOp(("a", "b.c"), "k", {"v": 1})]),
        InvalidNamespaceError,
        "period",
    ),
    ("empty label", lambda d: d.store.search(("a", "")), InvalidNamespaceError, "empty"),
    ("int label", lambda d: d.store.get(("a", 1), "k"), InvalidNamespaceError, "labels must be strings"),
    ("reserved root", lambda d: d.store.put(("langgraph",), "k", {}), InvalidNamespaceError, '"langgraph"'),
    ("separator in label", lambda d: d.store.put(("a\x01",), "k", {}), InvalidNamespaceError, "control"),
    ("bad suffix", lambda d: d.store.list_namespaces(suffix=("x.y",)), InvalidNamespaceError, "period"),
    # --- SQLStore: values, keys, TTLs
    ("value not a dict", lambda d: d.store.put(("a",), "k", ["v"]), SerializationError, "must be a dict"),
    ("set in value", lambda d: d.store.put(("a",), "k", {"v": {1, 2}}), SerializationError, "not JSON"),
    ("NaN in value", lambda d: d.store.put(("a",), "k", {"v": float("nan")}), SerializationError, "not JSON"),
    ("int key in value", lambda d: d.store.put(("a",), "k", {"v": {1: 2}}), SerializationError, "key 1"),
    ("NUL in value", lambda d: d.store.put(("a",), "k", {"v": "a\x00"}), SerializationError, "NUL"),
    ("mixed key types", lambda d: d.store.put(("a",), "k", {"v": {1: 2, "b": 3}}), SerializationError, "key 1"),
    ("circular value", lambda d: d.store.put(("a",), "k", _circular()), SerializationError, "refers to itself"),
    ("NUL in key", lambda d: d.store.put(("a",), "k\x00", {}), InvalidArgumentError, "NUL"),
    ("1e308 in value", lambda d: d.store.put(("a",), "k", {"v": 1e308}), SerializationError, "reads back as an int"),
    ("int beyond 64 bits", lambda d: d.store.put(("a",), "k", {"v": -(2**63) - 1}), SerializationError, "['v']"),
    ("lone surrogate in value", lambda d: d.store.put(("a",), "k", {"v": "\ud800"}), SerializationError, "surrogate"),
    ("lone surrogate in key", lambda d: d.store.put(("a",), "k", {"\ud800": 1}), SerializationError, "surrogate"),
    ("ttl beyond a datetime", lambda d: d.store.put(("a",), "k", {}, ttl=1e12), InvalidArgumentError, "minutes"),
    ("negative ttl", lambda d: d.store.put(("a",), "k", {}, ttl=-1), InvalidArgumentError, "positive"),
    (
        "second op of a batch bad",
        lambda d: d.store.batch([PutOp(("a",), "ok", {"v": 1}), PutOp(("a",), "bad", {"v": object()})]),
        SerializationError,
        "not JSON",
    ),
    ("unknown op", lambda d: d.store.batch([("get", "k")]), InvalidArgumentError, "expected GetOp"),
    # --- SQLStore: search and listing arguments
    ("unknown operator", lambda d: d.store.search(("a",), filter={"n": {"$in": [1]}}), InvalidFilterError, "$in"),
    ("mixed operator", lambda d: d.store.search((), filter={"n": {"$gt": 1, "x": 2}}), InvalidFilterError, "mix"),
    ("quote in filter key", lambda d: d.store.search((), filter={'a"b': 1}), InvalidFilterError, "double quotes"),
    ("$gt a list", lambda d: d.store.search((), filter={"n": {"$gt": [1]}}), InvalidFilterError, "number or"),
    ("filter not JSON", lambda d: d.store.search((), filter={"n": object()}), InvalidFilterError, "must be JSON"),
    ("negative limit", lambda d: d.store.search((), limit=-1), InvalidArgumentError, "limit"),
    ("limit beyond 64 bits", lambda d: d.store.search((), limit=2**64), InvalidArgumentError, "limit"),
    ("offset beyond 64 bits", lambda d: d.store.search((), offset=2**64), InvalidArgumentError, "offset"),
    (
        "self-referencing filter",
        lambda d: d.store.search((), filter={"n": _circular_list()}),
        InvalidFilterError,
        "itself",
    ),
    ("surrogate in filter", lambda d: d.store.search((), filter={"n": "\ud800"}), InvalidFilterError, "surrogate"),
    ("negative offset", lambda d: d.store.batch([SearchOp((), offset=-2)]), InvalidArgumentError, "offset"),
    ("max_depth 0", lambda d: d.store.list_namespaces(max_depth=0), InvalidArgumentError, "max_depth"),
    (
        "bad match type",
        lambda d: d.store.batch([ListNamespacesOp((MatchCondition("middle", ("a",)),))]),  # type: ignore[arg-type]
        InvalidArgumentError,
        "prefix' or 'suffix",
    ),
    ("get key not str", lambda d: d.store.batch([GetOp(("a",), 3)]), InvalidArgumentError, "must be a str"),  # type: ignore[arg-type]
    # --- the memory API
    ("app with a period", lambda d: d.store.add_memory("my.app", "u", "x"), InvalidNamespaceError, "period"),
    ("empty user", lambda d: d.store.read_memories("app", ""), InvalidNamespaceError, "empty"),
    ("empty content", lambda d: d.store.add_memory("app", "u", ""), InvalidArgumentError, "content"),
    ("topics a string", lambda d: d.store.add_memory("app", "u", "x", "tea"), InvalidArgumentError, "topics"),  # type: ignore[arg-type]
    ("update missing", lambda d: d.store.update_memory("app", "u", "nope", "x"), MemoryNotFoundError, "nope"),
    ("empty search", lambda d: d.store.search_memories("app", "u", ""), InvalidArgumentError, "query"),
    # --- SessionStore
    ("duplicate session", lambda d: d.sessions.create_session(**IDS), SessionExistsError, "already exists"),
    ("empty app", lambda d: d.sessions.create_session(app_name="", user_id="u"), InvalidArgumentError, "app_name"),
    (
        "state not JSON",
        lambda d: d.sessions.create_session(app_name="a", user_id="u", state={"x": object()}),
        SerializationError,
        "not JSON",
    ),
    (
        "state key empty",
        lambda d: d.sessions.create_session(app_name="a", user_id="u", state={"app:": 1}),
        InvalidArgumentError,
        "after 'app:'",
    ),
    ("bad event type", lambda d: _append(d, SessionEvent("u", type="has space")), InvalidArgumentError, "event type"),
    ("event not JSON", lambda d: _append(d, SessionEvent("u", content={1, 2})), SerializationError, "not JSON"),
    (
        "delta not JSON",
        lambda d: _append(d, SessionEvent("u", state_delta={"k": object()})),
        SerializationError,
        "not JSON",
    ),
    ("not an event", lambda d: _append(d, {"author": "u"}), InvalidArgumentError, "SessionEvent"),
    (
        "negative tokens",
        lambda d: d.sessions.record_usage(**IDS, turn_id="t", input_tokens=-1),
        InvalidArgumentError,
        "input_tokens",
    ),
    ("last_n negative", lambda d: d.sessions.get_session(**IDS, last_n=-1), InvalidArgumentError, "last_n"),
    ("last_n beyond 64 bits", lambda d: d.sessions.get_session(**IDS, last_n=2**64), InvalidArgumentError, "last_n"),
    (
        "after_seq beyond 64 bits",
        lambda d: d.sessions.query_events(**IDS, after_seq=2**64),
        InvalidArgumentError,
        "after_seq",
    ),
    (
        "tokens beyond 64 bits",
        lambda d: d.sessions.record_usage(**IDS, turn_id="t", output_tokens=2**64),
        InvalidArgumentError,
        "output_tokens",
    ),
    (
        "surrogate in state",
        lambda d: d.sessions.create_session(app_name="a", user_id="u", state={"x": "\ud800"}),
        SerializationError,
        "surrogate",
    ),
    (
        "time beyond a datetime",
        lambda d: d.sessions.query_events(**IDS, since=datetime.min),
        InvalidArgumentError,
        "out of range",
    ),
    ("types a string", lambda d: d.sessions.query_events(**IDS, types="message"), InvalidArgumentError, "types"),  # type: ignore[arg-type]
    ("cutoff a string", lambda d: d.sessions.purge_older_than("yesterday"), InvalidArgumentError, "datetime"),  # type: ignore[arg-type]
    # --- ShortMemoryStore
    ("zero ttl", lambda d: d.short_memory.set("t", "k", 1, ttl=0), InvalidArgumentError, "positive"),
    ("ttl 1e12", lambda d: d.short_memory.set("t", "k", 1, ttl=1e12), InvalidArgumentError, "thousand years"),
    ("ttl timedelta.max", lambda d: d.short_memory.set("t", "k", 1, ttl=timedelta.max), InvalidArgumentError, "ttl"),
    ("1e308 in short memory", lambda d: d.short_memory.set("t", "k", [1e308], ttl=1), SerializationError, "[0]"),
    ("value not JSON", lambda d: d.short_memory.set("t", "k", threading.Lock(), ttl=1), SerializationError, "not JSON"),
    ("empty type", lambda d: d.short_memory.get("", "k"), InvalidArgumentError, "memory_type"),
    ("key not str", lambda d: d.short_memory.delete("t", 5), InvalidArgumentError, "key"),  # type: ignore[arg-type]
]


def _circular_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _append(d: Storage, event: Any) -> Any:
    session = d.sessions.get_session(**IDS)
    return d.sessions.append_event(session, event)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """One SQLite database with data in every companion table, shared by the cases (a
    rejected call must leave it as it is, so sharing is itself part of the check)."""
    path = tmp_path_factory.mktemp("bad-input") / "filled.db"
    with connect(f"sqlite:///{path}", index=INDEX) as d:
        d.setup()
        _fill(d)
        yield d


def _fill(d: Storage) -> None:
    d.store.put(("a",), "k", {"text": "python", "n": 1}, ttl=5)
    d.store.add_memory("app", "u", "likes tea", ["drinks"])
    session = d.sessions.create_session(**IDS, state={"app:x": 1, "user:y": 2})
    d.sessions.append_event(session, SessionEvent("u", "hi", turn_id="t"))
    d.sessions.record_usage(**IDS, turn_id="t", input_tokens=3)
    d.sessions.put_summary(**IDS, summary="hello")
    d.short_memory.set("t", "k", [1], ttl=60)


@pytest.mark.parametrize(("name", "call", "error", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_typed_error_and_changes_nothing(
    filled: Storage, name: str, call: Callable[[Storage], Any], error: type[Exception], match: str
) -> None:
    before = snapshot(filled.store)
    with pytest.raises(error, match=_escaped(match)) as raised:
        call(filled)
    assert isinstance(raised.value, CheckpointSQLError)
    assert snapshot(filled.store) == before


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_the_same_refusals_hold_on_every_engine(db_url: str) -> None:
    with connect(db_url) as d:
        d.setup()
        _fill(d)
        before = snapshot(d.store)
        for _, call, error, _ in CASES:
            with pytest.raises(error):
                call(d)
        assert snapshot(d.store) == before


def test_bad_configuration_is_refused_when_the_store_is_built(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    bad: list[dict[str, Any]] = [
        {"index": {"embed": lambda t: t}},
        {"index": {"dims": 0, "embed": lambda t: t}},
        {"index": {"dims": 3}},
        {"index": {"dims": 3, "embed": lambda t: t, "fields": "text"}},
        {"ttl": {"default_ttl": -1}},
        {"ttl": {"sweep_every": 1}},
        {"index": INDEX, "vector_scoring": "gpu"},
        {"table_prefix": "Bad-Prefix"},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigurationError):
            SQLStore(url, **kwargs)
