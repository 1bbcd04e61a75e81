"""Nothing silently lost: what is accepted reads back exactly on every engine, filters
mean the same everywhere, and what a driver refuses anyway surfaces as a typed error.

The refusals themselves (one case per class) are in `test_bad_input.py` and
`test_stores_bad_input.py`; the generated calls in `test_properties.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.memory import InMemorySaver

from checkpoint_sql import InvalidArgumentError, SQLSaver
from checkpoint_sql.core.intent import Intent
from checkpoint_sql.retry.transient import is_transient
from tests.helpers import checkpoint, config, snapshot

VERSIONS: list[Any] = [
    2**70,
    -(2**70),
    0,
    1,
    1.5,
    1e20,
    -0.0,
    2.5e-300,
    "00000000000000000000000000000002.0.8243520523914521",
    "1.0",
    "a b",
]


@pytest.mark.parametrize("version", VERSIONS, ids=repr)
def test_any_channel_version_reads_back_with_its_value_and_type(saver: SQLSaver, version: Any) -> None:
    cp = checkpoint({"a": "value", "b": [1]}, {"a": version, "b": "1"})
    stored = saver.put(config("t"), cp, {}, {"a": version, "b": "1"})
    for found in (saver.get_tuple(stored), next(iter(saver.list(config("t"))))):
        assert found is not None
        assert found.checkpoint["channel_values"] == {"a": "value", "b": [1]}
        assert found.checkpoint["channel_versions"] == {"a": version, "b": "1"}
        assert type(found.checkpoint["channel_versions"]["a"]) is type(version)


def test_versions_that_compare_equal_keep_their_own_type_and_text(saver: SQLSaver) -> None:
    """1, 1.0, True and "1" (and 0.0 and -0.0) are equal or hash alike in Python; a
    checked version is remembered between puts, and none may come back as another."""
    for thread, version in enumerate([1, "1", 1.0, 0.0, -0.0, 1, "1"]):
        stored = saver.put(config(f"t{thread}"), checkpoint({"a": "x"}, {"a": version}), {}, {"a": version})
        found = saver.get_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"] == {"a": "x"}
        read = found.checkpoint["channel_versions"]["a"]
        assert (type(read), repr(read)) == (type(version), repr(version))
    with pytest.raises(InvalidArgumentError, match="version"):
        saver.put(config("bool"), checkpoint({"a": "x"}, {"a": True}), {}, {"a": True})


def test_an_unchanged_channel_keeps_its_value_through_later_checkpoints(saver: SQLSaver) -> None:
    first = saver.put(config("t"), checkpoint({"a": "x"}, {"a": 2**70}), {}, {"a": 2**70})
    second = saver.put(first, checkpoint({"a": "x", "b": 1}, {"a": 2**70, "b": 1e20}), {}, {"b": 1e20})
    found = saver.get_tuple(second)
    assert found is not None and found.checkpoint["channel_values"] == {"a": "x", "b": 1}


def test_rows_written_with_json_number_versions_still_read(saver: SQLSaver) -> None:
    """Before versions were stored as text, the JSON list held the number itself."""
    stored = saver.put(config("t"), checkpoint({"a": "old"}, {"a": 5}), {}, {"a": 5})
    with saver.db.sync_engine.begin() as conn:
        conn.execute(sa.update(saver.tables.checkpoints).values(versions=[["a", 5]]))
    found = saver.get_tuple(stored)
    assert found is not None
    assert found.checkpoint["channel_values"] == {"a": "old"}
    assert found.checkpoint["channel_versions"] == {"a": 5}


METADATA: list[dict[str, Any]] = [
    {"n": 1.0},
    {"n": 1},
    {"n": "1"},
    {"n": True},
    {"n": None},
    {},
    {"n": {"f": 1.0}},
    {"n": {"f": 1, "g": 2}},
    {"n": {"f": None}},
    {"n": {}},
    {"n": [1, {"a": 2.0}]},
    {"n": [1, {"a": 2.0}, 3]},
    {"n": [[1.5], "x"]},
]
FILTERS: list[dict[str, Any]] = [
    {"n": 1},
    {"n": 1.0},
    {"n": "1"},
    {"n": None},
    {"n": {"f": 1}},
    {"n": {"f": None}},
    {"n": {}},
    {"n": [1.0, {"a": 2}]},
    {"n": [[1.5], "x"]},
    {"n": []},
]


def test_filters_match_as_in_memory_saver_on_every_engine(saver: SQLSaver) -> None:
    """Numbers by value (also nested), strings exactly, objects and arrays member by
    member, top-level None as null or absent. Booleans match only booleans, as JSON
    has them (Python's ``True == 1`` is left out of the comparison)."""
    memory = InMemorySaver()
    for i, metadata in enumerate(METADATA):
        for target in (saver, memory):
            target.put(config(f"t{i}"), checkpoint(), metadata, {})
    for filter in FILTERS:
        ours = sorted(t.config["configurable"]["thread_id"] for t in saver.list(None, filter=filter))
        expected = sorted(
            t.config["configurable"]["thread_id"]
            for t in memory.list(None, filter=filter)
            if not _bool_matches_number(t.metadata, filter)
        )
        assert ours == expected, filter


def _bool_matches_number(metadata: Any, filter: dict[str, Any]) -> bool:
    return any(isinstance(metadata.get(k), bool) != isinstance(v, bool) for k, v in filter.items())


def test_nested_filter_is_not_satisfied_by_a_prefix_or_a_superset(saver: SQLSaver) -> None:
    saver.put(config("t"), checkpoint(), {"n": {"f": 1, "g": 2}, "l": [1, 2]}, {})
    assert list(saver.list(None, filter={"n": {"f": 1}})) == []
    assert list(saver.list(None, filter={"l": [1]})) == []
    assert list(saver.list(None, filter={"l": [1, 2, 3]})) == []
    assert len(list(saver.list(None, filter={"n": {"g": 2.0, "f": 1}, "l": [1.0, 2]}))) == 1


def _bind(value: Any) -> Any:
    def op(conn: sa.Connection) -> Any:
        return conn.execute(sa.text("SELECT :v"), {"v": value}).scalar()

    return op


def test_a_value_the_driver_cannot_bind_is_a_typed_error_never_retried(saver: SQLSaver) -> None:
    before = snapshot(saver)
    with pytest.raises(InvalidArgumentError, match="cannot be sent") as raised:
        saver.db.run(_bind("\ud800"))
    assert isinstance(raised.value.__cause__, UnicodeEncodeError)
    assert not is_transient(raised.value)
    assert snapshot(saver) == before


def _insert_out_of_range(conn: sa.Connection) -> None:
    conn.execute(sa.text("CREATE TEMPORARY TABLE tiny (x SMALLINT)"))
    conn.execute(sa.text("INSERT INTO tiny (x) VALUES (:v)"), {"v": 70_000})


def test_a_value_the_database_refuses_is_a_typed_error_never_retried(saver: SQLSaver) -> None:
    """SQLite's driver refuses an int beyond 64 bits at bind time; the servers refuse
    a value out of a column's range with a DataError."""
    if saver.db.family == "sqlite":
        operation, cause = _bind(2**70), OverflowError
    else:
        operation, cause = _insert_out_of_range, sa.exc.DataError
    with pytest.raises(InvalidArgumentError, match=r"cannot be sent|refused a value") as raised:
        saver.db.run(operation, intent=Intent.WRITE)
    assert isinstance(raised.value.__cause__, cause)
    assert not is_transient(raised.value)
