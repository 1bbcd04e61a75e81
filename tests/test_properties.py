"""Generated hostile calls against the saver and the stores, on every engine.

The property, for each public method tried: the call either succeeds and what it
stored reads back exactly (channel values and writes as the serializer's own round
trip gives them, versions, metadata and JSON values with their types), or it raises
one of checkpoint_sql's typed errors and every table is unchanged. Any other
exception, or a value read back altered, fails the test.

Examples are derandomized (a fixed seed) and few in CI; for a longer local run,
``pytest tests/test_properties.py --hypothesis-profile thorough`` (profiles in
`tests/conftest.py`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.base import WRITES_IDX_MAP, get_serializable_checkpoint_metadata

from checkpoint_sql import CheckpointSQLError, SQLSaver, Storage, connect
from tests import store_helpers
from tests.helpers import checkpoint, config, snapshot

REFUSED = object()

HOSTILE_TEXT = ["", "a\x00b", "\x00", "\ud800", "a\udfff", "é", "\U0001f600", '"', "\\", "x" * 300, "\x01", " "]
HOSTILE_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**70, -1, 0]
HOSTILE_FLOATS = [1e308, 1e16, 1e15, -0.0, 0.0, 2.5e-300, float("nan"), float("inf")]

texts = st.text(alphabet=st.characters(exclude_categories=()), max_size=8) | st.sampled_from(HOSTILE_TEXT)
ints = st.integers() | st.sampled_from(HOSTILE_INTS)
floats = st.floats() | st.sampled_from(HOSTILE_FLOATS)
scalars = st.none() | st.booleans() | ints | floats | texts
keys = texts | st.integers(-3, 3)
json_docs = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(keys, json_docs, max_size=3)
versions = ints | floats | texts
values = json_docs | st.binary(max_size=8)
durations = ints | floats | st.sampled_from([timedelta.max, timedelta(seconds=1), timedelta(0)])


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (``1`` is not ``1.0``, nor ``True``), the sign
    of zero, and NaN with itself: "reads back exactly"."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


def as_json(value: Any) -> Any:
    """`value` as JSON gives it back: tuples become lists, nothing else changes (so a
    non-string key that came back as a string would not compare equal)."""
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def attempt(tables: Callable[[], Any], call: Callable[[], Any]) -> Any:
    """`call()`, or `REFUSED` if it raised one of our typed errors and changed no table."""
    before = tables()
    try:
        return call()
    except CheckpointSQLError:
        assert tables() == before, "a refused call changed the database"
        return REFUSED


def round_trip(saver: SQLSaver, value: Any) -> Any:
    return saver.serde.loads_typed(saver.serde.dumps_typed(value))


# --- the saver ---------------------------------------------------------------------


@given(
    thread=texts | ints,
    channels=st.dictionaries(texts, st.tuples(values, versions), max_size=3),
    metadata=json_objects | st.none(),
)
def test_put_reads_back_exactly_or_is_refused(saver: SQLSaver, thread: Any, channels: Any, metadata: Any) -> None:
    cp = checkpoint({c: v for c, (v, _) in channels.items()}, {c: ver for c, (_, ver) in channels.items()})
    new_versions = dict(cp["channel_versions"])
    # A namespace of its own: a (channel, version) stored by an earlier example keeps
    # its value (versions name values, as LangGraph promises).
    where = config(thread, ns=uuid.uuid4().hex)
    stored = attempt(lambda: snapshot(saver), lambda: saver.put(where, cp, metadata, new_versions))
    if stored is REFUSED:
        return
    found = saver.get_tuple(stored)
    assert found is not None
    expected_values = {c: round_trip(saver, v) for c, (v, _) in channels.items()}
    assert same(found.checkpoint["channel_values"], expected_values)
    assert same(found.checkpoint["channel_versions"], new_versions)
    assert same(found.metadata, as_json(get_serializable_checkpoint_metadata(where, metadata)))


@given(
    writes=st.lists(st.tuples(texts, values), max_size=3),
    task_id=texts,
    task_path=texts,
)
def test_put_writes_reads_back_exactly_or_is_refused(
    saver: SQLSaver, writes: Any, task_id: Any, task_path: Any
) -> None:
    stored = saver.put(config(uuid.uuid4().hex), checkpoint(), {}, {})
    outcome = attempt(lambda: snapshot(saver), lambda: saver.put_writes(stored, writes, task_id, task_path))
    if outcome is REFUSED:
        return
    found = saver.get_tuple(stored)
    assert found is not None
    if any(channel in WRITES_IDX_MAP for channel, _ in writes):
        return  # special channels take fixed indexes: their order is another test's subject
    expected = [(task_id, channel, round_trip(saver, value)) for channel, value in writes]
    assert same([tuple(w) for w in found.pending_writes], expected)


def matches(metadata: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """The reference: InMemorySaver's equality, with booleans equal only to booleans."""
    return all(equal(metadata.get(k), v) for k, v in filter.items())


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# Filters need values that collide: few keys, few small numbers (as int and float).
filter_scalars = st.none() | st.booleans() | st.sampled_from([0, 1, 2, 1.0, 2.0, 0.5, "1", "a", "\ud800"])
filter_docs = st.recursive(
    filter_scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["f", "g", 'q"']), inner, max_size=2),
    max_leaves=4,
)
filter_objects = st.dictionaries(st.sampled_from(["a", "b"]), filter_docs, max_size=2)


@given(stored=st.lists(filter_objects, min_size=1, max_size=4), filter=filter_objects)
def test_list_filter_matches_as_in_memory_or_is_refused(saver: SQLSaver, stored: Any, filter: Any) -> None:
    thread = uuid.uuid4().hex
    accepted: dict[str, Any] = {}
    for metadata in stored:
        put = attempt(lambda: snapshot(saver), lambda m=metadata: saver.put(config(thread), checkpoint(), m, {}))
        if put is not REFUSED:
            accepted[put["configurable"]["checkpoint_id"]] = metadata
    found = attempt(
        lambda: None,
        lambda: [t.config["configurable"]["checkpoint_id"] for t in saver.list(config(thread), filter=filter)],
    )
    if found is REFUSED:
        return
    assert sorted(found) == sorted(i for i, m in accepted.items() if matches(m, filter))


@given(keep_last=ints | st.none(), older_than=durations | st.sampled_from(["1d", "100000000000000000000d"]))
def test_retain_runs_or_is_refused(saver: SQLSaver, keep_last: Any, older_than: Any) -> None:
    attempt(lambda: snapshot(saver), lambda: saver.retain(keep_last=keep_last, older_than=older_than, dry_run=True))


@given(limit=ints | st.none())
def test_list_limit_is_honoured_or_refused(saver: SQLSaver, limit: Any) -> None:
    found = attempt(lambda: None, lambda: list(saver.list(None, limit=limit)))
    assert found is REFUSED or limit is None or len(found) <= limit


# --- the stores ----------------------------------------------------------------------


@pytest.fixture
def storage(db_url: str) -> Any:
    with connect(db_url) as d:
        d.setup()
        yield d


def everything(d: Storage) -> Any:
    return snapshot(d.saver), store_helpers.snapshot(d.store)


@given(label=texts, key=texts, value=json_objects, ttl=st.none() | durations)
def test_store_put_reads_back_exactly_or_is_refused(
    storage: Storage, label: Any, key: Any, value: Any, ttl: Any
) -> None:
    outcome = attempt(lambda: everything(storage), lambda: storage.store.put(("p", label), key, value, ttl=ttl))
    if outcome is REFUSED:
        return
    item = storage.store.get(("p", label), key)
    if item is None:  # expired already
        assert ttl is not None and _seconds(ttl) < 60 * 60
        return
    assert same(item.value, as_json(value))


@given(filter=st.dictionaries(keys, json_docs, max_size=2), limit=ints, offset=ints)
def test_store_search_runs_or_is_refused(storage: Storage, filter: Any, limit: Any, offset: Any) -> None:
    attempt(
        lambda: everything(storage), lambda: storage.store.search(("p",), filter=filter, limit=limit, offset=offset)
    )


@given(memory_type=texts, key=texts, value=json_docs, ttl=durations)
def test_short_memory_reads_back_exactly_or_is_refused(
    storage: Storage, memory_type: Any, key: Any, value: Any, ttl: Any
) -> None:
    outcome = attempt(lambda: everything(storage), lambda: storage.short_memory.set(memory_type, key, value, ttl=ttl))
    if outcome is REFUSED:
        return
    found = storage.short_memory.get(memory_type, key, default=REFUSED)
    if found is REFUSED:  # expired already
        assert _seconds(ttl) < 60
        return
    assert same(found, as_json(value))


def _seconds(duration: Any) -> float:
    return float(duration.total_seconds() if isinstance(duration, timedelta) else duration)


@given(state=st.dictionaries(texts.map(lambda k: f"k{k}"), json_docs, max_size=3), last_n=st.none() | ints)
def test_session_state_reads_back_exactly_or_is_refused(storage: Storage, state: Any, last_n: Any) -> None:
    ids = {"app_name": "app", "user_id": uuid.uuid4().hex}
    session = attempt(lambda: everything(storage), lambda: storage.sessions.create_session(**ids, state=state))
    if session is REFUSED:
        return
    found = attempt(
        lambda: everything(storage), lambda: storage.sessions.get_session(**ids, session_id=session.id, last_n=last_n)
    )
    if found is REFUSED:
        return
    assert found is not None and same(found.state, as_json(state))
