"""Bad input gets a typed error that says what is wrong, and the database is unchanged.

Each case runs against a database that already holds a thread, and compares every
row of every table before and after the rejected call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from checkpoint_sql import (
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    SerializationError,
    SQLSaver,
    ThreadExistsError,
    ThreadNotFoundError,
    UnknownCheckpointError,
)
from tests.helpers import checkpoint, config, put_chain, snapshot

Case = tuple[str, Callable[[SQLSaver, dict[str, Any]], Any], type[Exception], str]

CASES: list[Case] = [
    # --- configs that address nothing
    ("config is not a mapping", lambda s, c: s.get_tuple("thread-1"), InvalidConfigError, "mapping"),
    ("no configurable", lambda s, c: s.get_tuple({}), InvalidConfigError, "'configurable'"),
    ("no thread_id", lambda s, c: s.get_tuple({"configurable": {}}), InvalidConfigError, "no 'thread_id'"),
    ("empty thread_id", lambda s, c: s.get_tuple(config("")), InvalidConfigError, "must not be empty"),
    ("dict thread_id", lambda s, c: s.get_tuple(config({"id": 1})), InvalidConfigError, "str, int or UUID"),
    ("NUL in thread_id", lambda s, c: s.get_tuple(config("a\x00b")), InvalidConfigError, "NUL"),
    ("lone surrogate", lambda s, c: s.get_tuple(config("a\ud800")), InvalidConfigError, "surrogate"),
    ("huge thread_id", lambda s, c: s.get_tuple(config("t" * 70_000)), InvalidConfigError, "70000 characters"),
    ("huge checkpoint_id", lambda s, c: s.get_tuple(config("t", "c" * 65)), InvalidConfigError, "not a checkpoint id"),
    ("non-ASCII checkpoint_id", lambda s, c: s.get_tuple(config("t", "é")), InvalidConfigError, "not a checkpoint id"),
    (
        "int checkpoint_ns",
        lambda s, c: s.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": 3}}),
        InvalidConfigError,
        "checkpoint_ns must be a str",
    ),
    # --- puts that cannot be stored
    (
        "put without thread",
        lambda s, c: s.put({"configurable": {}}, checkpoint(), {}, {}),
        InvalidConfigError,
        "thread_id",
    ),
    (
        "checkpoint without id",
        lambda s, c: s.put(config("t"), {"channel_values": {}}, {}, {}),
        InvalidArgumentError,
        "checkpoint\\['id'\\]",
    ),
    ("not a checkpoint", lambda s, c: s.put(config("t"), None, {}, {}), InvalidArgumentError, "Checkpoint dict"),
    (
        "unserializable value",
        lambda s, c: s.put(c, checkpoint({"lock": threading.Lock()}), {}, {"lock": 1}),
        SerializationError,
        "channel 'lock'",
    ),
    (
        "metadata not JSON",
        lambda s, c: s.put(c, checkpoint(), {"when": {1, 2}}, {}),
        SerializationError,
        "metadata\\['when'\\]",
    ),
    (
        "metadata NaN",
        lambda s, c: s.put(c, checkpoint(), {"score": float("nan")}, {}),
        SerializationError,
        "metadata\\['score'\\]",
    ),
    (
        "bool version",
        lambda s, c: s.put(c, checkpoint({"a": 1}), {}, {"a": True}),
        InvalidArgumentError,
        "version of channel 'a'",
    ),
    (
        "huge channel name",
        lambda s, c: s.put(c, checkpoint({"x" * 300: 1}), {}, {"x" * 300: 1}),
        InvalidArgumentError,
        "channel name",
    ),
    (
        "NUL in a channel name",
        lambda s, c: s.put(c, checkpoint({"a\x00b": 1}), {}, {"a\x00b": 1}),
        InvalidArgumentError,
        "NUL",
    ),
    (
        "lone surrogate in a channel name",
        lambda s, c: s.put(c, checkpoint({"a\ud800": 1}), {}, {"a\ud800": 1}),
        InvalidArgumentError,
        "surrogate",
    ),
    (
        "NUL in a write channel",
        lambda s, c: s.put_writes(c, [("a\x00", 1)], "task"),
        InvalidArgumentError,
        "NUL",
    ),
    (
        "version with a control character",
        lambda s, c: s.put(c, checkpoint({"a": 1}, {"a": "1\x00"}), {}, {"a": "1\x00"}),
        InvalidArgumentError,
        "printable ASCII",
    ),
    ("metadata None", lambda s, c: s.put(c, checkpoint(), None, {}), SerializationError, "metadata must be a dict"),
    ("metadata int key", lambda s, c: s.put(c, checkpoint(), {1: "a"}, {}), SerializationError, "key 1"),
    (
        "metadata nested int key",
        lambda s, c: s.put(c, checkpoint(), {"a": {2: "b"}}, {}),
        SerializationError,
        r"metadata\['a'\] has the key 2",
    ),
    (
        "metadata float JSONB reads as int",
        lambda s, c: s.put(c, checkpoint(), {"big": 1e308}, {}),
        SerializationError,
        "reads back as an int",
    ),
    (
        "metadata int beyond 64 bits",
        lambda s, c: s.put(c, checkpoint(), {"n": [2**64]}, {}),
        SerializationError,
        r"metadata\['n'\]\[0\]",
    ),
    (
        "lone surrogate in metadata",
        lambda s, c: s.put(c, checkpoint(), {"a": {"b": "\udfff"}}, {}),
        SerializationError,
        "surrogate",
    ),
    (
        "new_versions not a mapping",
        lambda s, c: s.put(c, checkpoint(), {}, ["a"]),
        InvalidArgumentError,
        "new_versions",
    ),
    (
        "put_full bad write",
        lambda s, c: s.put_full(c, checkpoint(), {}, {}, [("task", "a")]),
        InvalidArgumentError,
        "task_id, channel, value",
    ),
    (
        "put_full unserializable write",
        lambda s, c: s.put_full(c, checkpoint(), {}, {}, [("task", "a", threading.Lock())]),
        SerializationError,
        "write to 'a'",
    ),
    # --- writes
    (
        "writes without checkpoint",
        lambda s, c: s.put_writes(config("t"), [("a", 1)], "task"),
        UnknownCheckpointError,
        "no checkpoint_id",
    ),
    (
        "unserializable write",
        lambda s, c: s.put_writes(c, [("a", 1), ("b", threading.Lock())], "task"),
        SerializationError,
        "write to 'b'",
    ),
    (
        "write not a pair",
        lambda s, c: s.put_writes(c, [("a", 1, 2)], "task"),
        InvalidArgumentError,
        "\\(channel, value\\) pair",
    ),
    ("empty task_id", lambda s, c: s.put_writes(c, [("a", 1)], ""), InvalidArgumentError, "task_id"),
    # --- listing
    (
        "filter key with double quote",
        lambda s, c: list(s.list(None, filter={'a"b': 1})),
        InvalidFilterError,
        "not allowed",
    ),
    (
        "filter key with SQL",
        lambda s, c: list(s.list(None, filter={'x") or 1=1 --': 1})),
        InvalidFilterError,
        "not allowed",
    ),
    (
        "filter key with backslash",
        lambda s, c: list(s.list(None, filter={"a\\b": 1})),
        InvalidFilterError,
        "not allowed",
    ),
    ("empty filter key", lambda s, c: list(s.list(None, filter={"": 1})), InvalidFilterError, "not allowed"),
    (
        "filter value not JSON",
        lambda s, c: list(s.list(None, filter={"a": object()})),
        InvalidFilterError,
        "must be JSON",
    ),
    ("filter not a dict", lambda s, c: list(s.list(None, filter=[("a", 1)])), InvalidFilterError, "must be a dict"),
    ("negative limit", lambda s, c: list(s.list(None, limit=-1)), InvalidArgumentError, "limit"),
    ("limit beyond 64 bits", lambda s, c: list(s.list(None, limit=2**64)), InvalidArgumentError, "list: limit"),
    (
        "filter int beyond 64 bits",
        lambda s, c: list(s.list(None, filter={"a": 2**64})),
        InvalidFilterError,
        r"filter\['a'\]",
    ),
    (
        "lone surrogate in filter",
        lambda s, c: list(s.list(None, filter={"a": "\ud800"})),
        InvalidFilterError,
        "surrogate",
    ),
    (
        "nested filter key with a quote",
        lambda s, c: list(s.list(None, filter={"a": {'b"': 1}})),
        InvalidFilterError,
        "nested filter key",
    ),
    (
        "self-referencing filter",
        lambda s, c: list(s.list(None, filter={"a": _circular_list()})),
        InvalidFilterError,
        "refers to itself",
    ),
    # --- retention arguments that overflow date arithmetic
    ("keep_last beyond 64 bits", lambda s, c: s.retain(keep_last=2**70), InvalidArgumentError, "keep_last"),
    (
        "duration beyond a datetime",
        lambda s, c: s.retain(older_than="100000000000000000000d"),
        InvalidArgumentError,
        "thousand years",
    ),
    ("timedelta.max", lambda s, c: s.retain(older_than=timedelta.max), InvalidArgumentError, "older_than"),
    ("string limit", lambda s, c: list(s.list(None, limit="10")), InvalidArgumentError, "limit"),
    ("before without id", lambda s, c: list(s.list(None, before={"configurable": {}})), InvalidConfigError, "before="),
    # --- thread-wide operations
    ("delete empty thread id", lambda s, c: s.delete_thread(""), InvalidConfigError, "must not be empty"),
    ("delete None thread", lambda s, c: s.delete_thread(None), InvalidConfigError, "str, int or UUID"),
    ("run ids as a string", lambda s, c: s.delete_for_runs("run-1"), InvalidArgumentError, "list of ids"),
    ("prune a string", lambda s, c: s.prune("thread-1"), InvalidArgumentError, "list of ids"),
    ("prune strategy", lambda s, c: s.prune(["thread-1"], strategy="oldest"), InvalidArgumentError, "unknown strategy"),
    ("copy onto itself", lambda s, c: s.copy_thread("thread-1", "thread-1"), InvalidArgumentError, "same thread"),
    (
        "copy onto a thread with history",
        lambda s, c: s.copy_thread("thread-1", "thread-2"),
        ThreadExistsError,
        "already has checkpoints",
    ),
    (
        "copy a missing thread",
        lambda s, c: s.copy_thread("nobody", "thread-3"),
        ThreadNotFoundError,
        "has no checkpoints",
    ),
    (
        "channels as a string",
        lambda s, c: s.get_delta_channel_history(config=c, channels="log"),
        InvalidArgumentError,
        "list of ids",
    ),
]


def _circular_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize(("case", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
    saver: SQLSaver, case: str, call: Callable[[SQLSaver, dict[str, Any]], Any], error: type[Exception], message: str
) -> None:
    stored = put_chain(saver, "thread-1", 2)[-1]
    put_chain(saver, "thread-2", 1)
    saver.put_writes(stored, [("a", 1)], "task")
    before = snapshot(saver)
    with pytest.raises(error, match=message):
        call(saver, stored)
    assert snapshot(saver) == before


def test_unknown_checkpoint_ids_are_not_errors_but_absent(saver: SQLSaver) -> None:
    put_chain(saver, "thread-1", 2)
    missing = "1f000000-0000-6000-8000-000000000000"
    assert saver.get_tuple(config("thread-1", missing)) is None
    assert list(saver.list(config("thread-1", missing))) == []
    assert saver.get_tuple(config("no-such-thread")) is None
