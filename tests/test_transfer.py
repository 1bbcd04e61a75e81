"""export → import between engines: every checkpoint reads back exactly as it did
(`get_tuple` equal), delta channels included, and the moved threads keep running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.types import Command

from checkpoint_sql import SQLSaver
from tests import lineages
from tests.cli_helpers import all_tuples, run
from tests.conftest import ENGINES, fresh_database, require


@pytest.fixture(scope="module", params=ENGINES)
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require(request.param)
    with fresh_database(request.param, tmp_path_factory.mktemp("source")) as url:
        lineages.build(url)
        yield url


def test_every_thread_moves_to_every_engine_and_reads_back_exactly(
    capsys: pytest.CaptureFixture[str], source: str, tmp_path: Path
) -> None:
    exported = tmp_path / "all.cpsql"
    out = run(capsys, "export", "--all", "-o", str(exported), "--url", source, "--json")
    assert out.code == 0, out.err
    assert out.json["threads"] == 5 and out.json["bytes"] == exported.stat().st_size
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
