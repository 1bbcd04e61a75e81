"""What `threads`, `stats` and `stats THREAD` count for lists stored element by
element: a list's blob rows (array header and manifest) and its parts, each part once
per namespace however many versions reach it, so that a size is what the tables
hold. On each engine, against payload sums taken straight from the tables."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import SQLSaver
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.dialects.introspection import stored_size
from checkpoint_sql.saver import elements
from tests.cli_helpers import run
from tests.helpers import checkpoint, config, count, long_thread, messages


def stored(saver: SQLSaver, column: sa.Column[Any], *where: sa.ColumnElement[bool]) -> int:
    """The payload bytes of `column` in the rows matching `where`."""
    size = stored_size(saver.db.family, column)
    with saver.db.sync_engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(size), 0)).where(*where)).scalar_one())


def thread_bytes(saver: SQLSaver, thread_id: str) -> int:
    t, here = saver.tables, key_of(thread_id)
    columns = (t.checkpoints.c.checkpoint, t.blobs.c.blob, t.blobs.c.manifest, t.parts.c.data, t.writes.c.blob)
    return sum(stored(saver, c, c.table.c.thread_key == here) for c in columns)  # type: ignore[attr-defined]


def channel_rows(saver: SQLSaver, thread_id: str, ns: str, channel: str, version: str | None = None) -> int:
    """The bytes of a channel's blob rows (one version, or all)."""
    bl = saver.tables.blobs
    where = [bl.c.thread_key == key_of(thread_id), bl.c.ns_key == key_of(ns), bl.c.channel == channel]
    if version is not None:
        where.append(bl.c.version == version)
    return stored(saver, bl.c.blob, *where) + stored(saver, bl.c.manifest, *where)


def part_bytes(saver: SQLSaver, thread_id: str, ns: str, digests: set[bytes] | None = None) -> int:
    pa = saver.tables.parts
    where = [pa.c.thread_key == key_of(thread_id), pa.c.ns_key == key_of(ns)]
    if digests is not None:
        where.append(pa.c.digest.in_(sorted(digests)))
    return stored(saver, pa.c.data, *where)


def namespaces(capsys: pytest.CaptureFixture[str], url: str, thread_id: str) -> dict[str, Any]:
    report = run(capsys, "stats", thread_id, "--url", url, "--json").json
    return {ns["checkpoint_ns"]: ns for ns in report["namespaces"]} | {"totals": report["totals"]}


def test_a_long_conversation_counts_each_of_its_parts_once(
    capsys: pytest.CaptureFixture[str], saver: SQLSaver, db_url: str
) -> None:
    long_thread(saver)
    expected = thread_bytes(saver, "long")
    for sort in ("last", "size"):
        assert run(capsys, "threads", "--url", db_url, "--json", "--sort", sort).json["threads"][0]["bytes"] == expected

    found = namespaces(capsys, db_url, "long")
    assert found["totals"]["bytes"] == expected
    chat = {c["channel"]: c for c in found[""]["channels"]}["messages"]
    assert chat["bytes"] == channel_rows(saver, "long", "", "messages") + part_bytes(saver, "long", "")
    fork = saver.get_tuple(config("long"))
    assert fork is not None and fork.checkpoint["channel_versions"]["messages"] == 1000
    with saver.db.sync_engine.connect() as conn:
        bl = saver.tables.blobs
        manifest = conn.execute(sa.select(bl.c.manifest).where(bl.c.version == "1000")).scalar_one()
    reached = set(elements.tail_of(manifest))
    assert chat["latest_bytes"] == channel_rows(saver, "long", "", "messages", "1000") + part_bytes(
        saver, "long", "", reached
    )
    notes = found["child:1"]["channels"][0]
    assert notes["channel"] == "notes" and notes["versions"] == 2
    assert notes["bytes"] == channel_rows(saver, "long", "child:1", "notes") + part_bytes(saver, "long", "child:1")

    tables = run(capsys, "stats", "--url", db_url, "--json").json["tables"]
    pa, bl = saver.tables.parts, saver.tables.blobs
    assert tables[pa.name]["rows"] == count(saver, "parts")
    assert tables[pa.name]["payload_bytes"] == stored(saver, pa.c.data)
    assert tables[bl.name]["payload_bytes"] == stored(saver, bl.c.blob) + stored(saver, bl.c.manifest)


def test_a_part_two_channels_share_counts_for_the_first_and_a_stray_part_apart(
    capsys: pytest.CaptureFixture[str], saver: SQLSaver, db_url: str
) -> None:
    shared = messages(3)
    saver.put(config("t"), checkpoint({"b": shared, "a": shared}), {}, {"a": 1, "b": 1})
    stray = b"\x92\x01\x02"  # bytes no manifest lists, as a put that lost the race for its version leaves
    with saver.db.sync_engine.begin() as conn:
        digest = elements.digest_of(stray)
        conn.execute(
            sa.insert(saver.tables.parts),
            {"thread_key": key_of("t"), "ns_key": key_of(""), "digest": digest, "data": stray},
        )

    root = namespaces(capsys, db_url, "t")[""]
    by_channel = {c["channel"]: c["bytes"] for c in root["channels"]}
    assert by_channel["b"] == channel_rows(saver, "t", "", "b")
    assert (
        by_channel["a"] == channel_rows(saver, "t", "", "a") + part_bytes(saver, "t", "") - root["unreferenced_bytes"]
    )
    assert root["unreferenced_bytes"] == part_bytes(saver, "t", "", {digest}) > 0
    assert (
        root["bytes"]
        == thread_bytes(saver, "t")
        == run(capsys, "threads", "--url", db_url, "--json").json["threads"][0]["bytes"]
    )
    assert "(unreferenced list parts)" in run(capsys, "stats", "t", "--url", db_url).out
