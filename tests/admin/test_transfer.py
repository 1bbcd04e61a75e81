"""export → import between engines: every checkpoint reads back exactly as it did
(`get_tuple` equal), delta channels included, and the moved threads keep running.

Lists stored element by element move in that form (format version 2): each element
once per namespace, so a long conversation's export stays small. Files written by
version 1, whose values are whole, still import, and their lists are split on the
way in. A file whose parts do not cover its manifests is refused, storing nothing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import sqlalchemy as sa
from langgraph.types import Command

from checkpoint_sql import InvalidArgumentError, MissingPartsError, SQLSaver
from checkpoint_sql.admin import transfer
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.saver import elements
from tests import lineages
from tests.cli_helpers import all_tuples, run
from tests.conftest import ENGINES, fresh_database, require, splitting_every_list
from tests.helpers import LONG, checkpoint, config, long_thread, messages, snapshot


@pytest.fixture(scope="module", params=ENGINES)
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lineages and `long_thread` (thread ``long``), on each engine."""
    require(request.param)
    with fresh_database(request.param, tmp_path_factory.mktemp("source")) as url:
        lineages.build(url)
        with splitting_every_list(), SQLSaver(url) as saver:
            long_thread(saver)
        yield url


def exported(saver: SQLSaver, *thread_ids: str) -> bytes:
    out = io.BytesIO()
    transfer.export_threads(saver, list(thread_ids), out)
    return out.getvalue()


def records(data: bytes) -> list[dict[str, Any]]:
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False))


def packed(found: list[dict[str, Any]]) -> bytes:
    return b"".join(msgpack.packb(r, use_bin_type=True) for r in found)


VERSION_1_KEYS = {
    "thread": {"kind", "thread_id"},
    "checkpoint": {"kind", "ns", "id", "parent", "type", "checkpoint", "metadata", "versions", "run_id", "created_us"},
    "blob": {"kind", "ns", "channel", "version", "type", "blob"},
    "write": {"kind", "ns", "checkpoint_id", "task_id", "idx", "channel", "task_path", "type", "blob"},
    "end": {"kind", "threads", "checkpoints", "blobs", "writes", "skipped"},
}
"""The records version 1 wrote (checkpoint_sql/admin/transfer.py before lists were split)."""


def as_version_1(data: bytes) -> bytes:
    """The file version 1 wrote for the same rows: every value whole, as rows were
    stored before lists were split, and no part records or manifests."""
    found = records(data)
    parts = {(r["ns"], r["digest"]): r["data"] for r in found if r.get("kind") == "part"}
    old = []
    for r in found:
        kind = r.get("kind")
        if kind is None:
            old.append({**r, "version": 1})
            continue
        if kind == "part":
            continue
        r = dict(r)
        if kind == "blob" and (manifest := r.pop("manifest")) is not None:
            r["blob"] = elements.join(r["blob"], manifest, {d: v for (ns, d), v in parts.items() if ns == r["ns"]})
        r.pop("parts", None)
        assert set(r) == VERSION_1_KEYS[kind], kind
        old.append(r)
    return packed(old)


def stored_form(saver: SQLSaver, thread_id: str = "long") -> tuple[int, int]:
    """How many parts a thread has, and how many of its values are split into parts."""
    bl, pa, here = saver.tables.blobs, saver.tables.parts, key_of(thread_id)
    with saver.db.sync_engine.connect() as conn:
        parts = conn.execute(sa.select(sa.func.count()).where(pa.c.thread_key == here)).scalar_one()
        split = conn.execute(sa.select(sa.func.count()).where(bl.c.thread_key == here, bl.c.manifest.is_not(None)))
        return int(parts), int(split.scalar_one())


def test_every_thread_moves_to_every_engine_and_reads_back_exactly(
    capsys: pytest.CaptureFixture[str], source: str, tmp_path: Path
) -> None:
    exported = tmp_path / "all.cpsql"
    out = run(capsys, "export", "--all", "-o", str(exported), "--url", source, "--json")
    assert out.code == 0, out.err
    assert out.json["threads"] == 6 and out.json["bytes"] == exported.stat().st_size
    with SQLSaver(source) as saver:
        expected = all_tuples(saver)
    assert out.json["checkpoints"] == len(expected)

    for engine in ENGINES:
        require(engine)
        with fresh_database(engine, tmp_path) as target:
            imported = run(capsys, "import", str(exported), "--url", target, "--json")
            assert imported.code == 0, imported.err
            assert imported.json["checkpoints"] == len(expected)
            with SQLSaver(target) as saver:
                assert all_tuples(saver) == expected, f"{source.split(':')[0]} -> {engine}"
                log = lineages.compiled("log", saver).get_state(lineages.cfg("log")).values["log"]
                assert log == lineages.LOG
                resumed = lineages.compiled("agent", saver).invoke(Command(resume="yes"), lineages.cfg("agent"))
                assert resumed["messages"][-1].content.startswith("answer: ")


def test_selected_threads_and_replacing_them(
    capsys: pytest.CaptureFixture[str], source: str, db_url: str, tmp_path: Path
) -> None:
    exported = tmp_path / "two.cpsql"
    assert run(capsys, "export", "review", "log", "-o", str(exported), "--url", source).code == 0
    first = run(capsys, "import", str(exported), "--url", db_url, "--json").json
    assert first["thread_ids"] == ["review", "log"]
    assert "already exists" in run(capsys, "import", str(exported), "--url", db_url).failed_cleanly()
    again = run(capsys, "import", str(exported), "--url", db_url, "--replace", "--json").json
    assert again == first
    with SQLSaver(source) as a, SQLSaver(db_url) as b:
        moved = {k: v for k, v in all_tuples(a).items() if k[0] in ("review", "log")}
        assert all_tuples(b) == moved


def test_a_long_conversation_moves_in_its_split_form_and_reads_back_exactly(source: str, tmp_path: Path) -> None:
    """Thread ``long``: pages of digests, a fork, a subgraph namespace, pending writes."""
    with SQLSaver(source) as saver:
        data = exported(saver, "long")
        expected = {ns: list(saver.list(config("long", ns=ns))) for ns in ("", "child:1")}
        form = stored_form(saver)
    kinds = [r.get("kind") for r in records(data)]
    assert kinds.count("part") == form[0], "each element and page once, however many versions hold it"
    assert len(data) * 4 < len(as_version_1(data)), "version 1 carried every version of the list whole"
    assert len(expected[""]) == LONG + 1 and len(expected["child:1"]) == 2

    for engine in ENGINES:
        require(engine)
        with fresh_database(engine, tmp_path) as target, SQLSaver(target) as saver:
            saver.setup()
            counts = transfer.import_threads(saver, io.BytesIO(data))
            assert (counts.parts, stored_form(saver)) == (form[0], form)
            for ns, listed in expected.items():
                assert list(saver.list(config("long", ns=ns))) == listed, (source.split(":")[0], engine, ns)
                assert [saver.get_tuple(t.config) for t in listed] == listed


def test_a_version_1_file_imports_and_its_lists_are_split_on_the_way_in(
    saver: SQLSaver, engine_name: str, tmp_path: Path
) -> None:
    long_thread(saver)
    data = exported(saver, "long")
    expected = all_tuples(saver)
    old = as_version_1(data)
    with fresh_database(engine_name, tmp_path) as target, SQLSaver(target) as moved:
        moved.setup()
        counts = transfer.import_threads(moved, io.BytesIO(old))
        assert all_tuples(moved) == expected
        assert (counts.parts, stored_form(moved)) == (stored_form(saver)[0], stored_form(saver))
        again = exported(moved, "long")
    assert sorted(map(repr, records(again)[1:])) == sorted(map(repr, records(data)[1:])), "the form a put stores"


def test_a_file_whose_parts_do_not_make_up_its_values_is_refused_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], saver: SQLSaver, engine_name: str, tmp_path: Path
) -> None:
    long_thread(saver)
    good = records(exported(saver, "long"))
    blobs = [r for r in good if r.get("kind") == "blob" and r["manifest"] is not None]
    longest = max(blobs, key=lambda r: (len(elements.pages_of(r["manifest"])), len(elements.tail_of(r["manifest"]))))
    page, element = elements.pages_of(longest["manifest"])[0], elements.tail_of(longest["manifest"])[0]

    def without(digest: bytes) -> list[dict[str, Any]]:
        kept = [r for r in good if r.get("digest") != digest]
        return [{**r, "parts": r["parts"] - 1} if r.get("kind") == "end" else r for r in kept]

    def changed(match: Any, **fields: Any) -> list[dict[str, Any]]:
        return [{**r, **fields} if match(r) else r for r in good]

    damaged = {
        "no element": (without(element), "lists 1 list part(s) the file does not hold"),
        "no page": (without(page), "lists 1 list part(s) the file does not hold"),
        "other namespace": (
            changed(lambda r: r.get("digest") == element, ns="child:1"),
            "lists 1 list part(s) the file does not hold for that namespace",
        ),
        "altered part": (
            changed(lambda r: r.get("digest") == element, data=b"\x90"),
            "whose digest is not that of its data",
        ),
        "cut manifest": (changed(lambda r: r is longest, manifest=longest["manifest"][:-3]), "malformed manifest"),
        "wrong header": (changed(lambda r: r is longest, blob=b"\x91"), "array header of 1 elements"),
    }
    with fresh_database(engine_name, tmp_path) as target, SQLSaver(target) as other:
        other.setup()
        before = snapshot(other)
        for name, (found, message) in damaged.items():
            with pytest.raises(InvalidArgumentError, match=re.escape(message)):
                transfer.import_threads(other, io.BytesIO(packed(found)))
            assert snapshot(other) == before, name
        (tmp_path / "bad.cpsql").write_bytes(packed(damaged["no element"][0]))
        line = run(capsys, "import", str(tmp_path / "bad.cpsql"), "--url", target).failed_cleanly()
        assert "thread 'long', namespace ''" in line and "nothing of this thread was imported" in line
        assert snapshot(other) == before


def test_a_thread_whose_parts_are_gone_from_the_database_is_not_exported(saver: SQLSaver) -> None:
    long_thread(saver)
    with saver.db.sync_engine.begin() as conn:
        conn.execute(sa.delete(saver.tables.parts))
    with pytest.raises(MissingPartsError, match="thread 'long': channel"):
        exported(saver, "long")


def test_a_thread_replaced_by_an_import_is_written_on_by_the_same_saver(saver: SQLSaver, tmp_path: Path) -> None:
    """The saver remembers which parts it stored (`elements.PartCache`); a replacing
    import deletes them, and a later put must store them again."""
    before = config("t")
    before = saver.put(before, checkpoint({"messages": messages(3)}, {"messages": 1}), {}, {"messages": 1})
    with fresh_database("sqlite", tmp_path) as elsewhere, SQLSaver(elsewhere) as other:
        other.setup()
        replacement = other.put(
            config("t"), checkpoint({"messages": messages(2, 100)}, {"messages": 1}), {}, {"messages": 1}
        )
        data = exported(other, "t")
    transfer.import_threads(saver, io.BytesIO(data), replace=True)
    value = [*messages(3), *messages(2, 100)]
    stored = saver.put(replacement, checkpoint({"messages": value}, {"messages": 2}), {}, {"messages": 2})
    found = saver.get_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"]["messages"] == value
