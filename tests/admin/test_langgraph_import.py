"""import-langgraph: threads written by the official SQLite and PostgreSQL savers,
with the official packages, read back through our saver exactly as through theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from checkpoint_sql import SQLSaver
from tests import lineages
from tests.cli_helpers import all_tuples, run
from tests.conftest import fresh_database, require
from tests.helpers import count, long_thread


@pytest.fixture(params=["sqlite", "postgresql"])
def official(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(URL, saver) of an official saver holding the test lineages and a conversation
    long enough to have pages of digests once split (`long_thread`)."""
    if request.param == "sqlite":
        path = tmp_path / "official.db"
        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.setup()
            lineages.write_lineages(saver)
            long_thread(saver)
            yield f"sqlite:///{path}", saver
        return
    require("postgresql")
    with fresh_database("postgresql", tmp_path) as url, PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        lineages.write_lineages(saver)
        long_thread(saver)
        yield url, saver


def theirs(saver: Any) -> dict[tuple[str, str, str], Any]:
    found = {}
    for config in [t.config for t in saver.list(None)]:  # SqliteSaver cannot read while it lists
        c = config["configurable"]
        found[(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])] = saver.get_tuple(config)
    return found


def test_every_checkpoint_reads_back_as_the_official_saver_reads_it(
    capsys: pytest.CaptureFixture[str], official: tuple[str, Any], db_url: str
) -> None:
    source, saver = official
    imported = run(capsys, "import-langgraph", "--from", source, "--url", db_url, "--json")
    assert imported.code == 0, imported.err
    expected = theirs(saver)
    assert sorted(imported.json["imported"]) == sorted([*lineages.GRAPHS, "long"])
    assert imported.json["checkpoints"] == len(expected)
    with SQLSaver(db_url) as ours:
        assert imported.json["parts"] == count(ours, "parts") > 0, "lists are stored element by element"
        got = all_tuples(ours)
        assert got.keys() == expected.keys()
        for key, want in expected.items():
            assert got[key].checkpoint == want.checkpoint, key
            assert (got[key].metadata, got[key].parent_config, got[key].pending_writes) == (
                want.metadata,
                want.parent_config,
                want.pending_writes,
            ), key
        assert lineages.compiled("log", ours).get_state(lineages.cfg("log")).values["log"] == lineages.LOG
        resumed = lineages.compiled("review", ours).invoke(Command(resume="fine"), lineages.cfg("review"))
        assert resumed["notes"][-2:] == ["reviewed: fine", "published"]

    again = run(capsys, "import-langgraph", "--from", source, "--url", db_url, "--thread", "log", "--json").json
    assert (again["imported"], again["skipped"]) == ([], ["log"])
    replaced = run(
        capsys, "import-langgraph", "--from", source, "--url", db_url, "--thread", "log", "--replace", "--json"
    )
    assert replaced.json["imported"] == ["log"]


def test_bad_sources_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str) -> None:
    with SqliteSaver.from_conn_string(str(tmp_path / "official.db")) as saver:
        saver.setup()
    source = f"sqlite:///{tmp_path}/official.db"
    assert (
        "'ghost'"
        in run(capsys, "import-langgraph", "--from", source, "--thread", "ghost", "--url", db_url).failed_cleanly()
    )
    with SQLSaver(f"sqlite:///{tmp_path}/ours.db") as ours:
        ours.setup()
    line = run(capsys, "import-langgraph", "--from", f"sqlite:///{tmp_path}/ours.db", "--url", db_url).failed_cleanly()
    assert "no langgraph-checkpoint-sqlite tables" in line
    line = run(
        capsys, "import-langgraph", "--from", "mysql://root@127.0.0.1:3306/test", "--url", db_url
    ).failed_cleanly()
    assert "langgraph-checkpoint-postgres" in line
